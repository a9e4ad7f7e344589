package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// A setting is one named option. Its value comes, highest first, from a
// command-line flag, an ACMEHUB_* environment variable (or ACMEHUB_*_FILE,
// naming a file that holds it), the config file, or its default.
type setting struct {
	name   string // flag name; env name is ACMEHUB_ + upper-case with '_'
	def    string
	usage  string
	list   bool // may be given several times; comma-separated in env and file
	value  string
	values []string
	source string // "default", "file", "env", "flag"
	isFlag bool
	hidden bool // accepted (e.g. from a shared config file) but not listed in usage
}

func (s *setting) envName() string {
	return "ACMEHUB_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// settingSet is the table of settings of one command.
type settingSet struct {
	order  []*setting
	byName map[string]*setting
}

func newSettingSet() *settingSet { return &settingSet{byName: map[string]*setting{}} }

func (ss *settingSet) add(name, def, usage string) *setting {
	s := &setting{name: name, def: def, usage: usage, value: def, source: "default"}
	ss.order = append(ss.order, s)
	ss.byName[name] = s
	return s
}

func (ss *settingSet) addList(name, def, usage string) *setting {
	s := ss.add(name, def, usage)
	s.list = true
	s.values = splitList(def)
	return s
}

func (ss *settingSet) get(name string) string { return ss.byName[name].value }

func (ss *settingSet) getList(name string) []string { return ss.byName[name].values }

// listFlag collects repeated flags for a list setting.
type listFlag struct{ s *setting }

func (l listFlag) String() string { return "" }

func (l listFlag) Set(v string) error {
	if !l.s.isFlag {
		l.s.values, l.s.isFlag = nil, true
	}
	l.s.values = append(l.s.values, splitList(v)...)
	l.s.value = strings.Join(l.s.values, ",")
	l.s.source = "flag"
	return nil
}

type valueFlag struct{ s *setting }

func (v valueFlag) String() string { return "" }

func (v valueFlag) Set(x string) error {
	v.s.value, v.s.source, v.s.isFlag = x, "flag", true
	return nil
}

// load fills the settings from file, environment and arguments and returns
// the remaining positional arguments. Every problem found is reported at once.
func (ss *settingSet) load(fs *flag.FlagSet, args []string, getenv func(string) string, configFlag string) ([]string, error) {
	for _, s := range ss.order {
		if s.list {
			fs.Var(listFlag{s}, s.name, s.usage)
		} else {
			fs.Var(valueFlag{s}, s.name, s.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var problems []string
	// The config file's own path may come from the flag or the environment.
	path := ss.byName[configFlag]
	if !path.isFlag {
		if v := getenv(path.envName()); v != "" {
			path.value, path.source = v, "env"
		}
	}
	if path.value != "" {
		if err := ss.loadFile(path.value); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, s := range ss.order {
		if s.isFlag || s == path {
			continue
		}
		v, ok, err := envValue(s.envName(), getenv)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if ok {
			ss.set(s, v, "env")
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return fs.Args(), nil
}

// envValue reads NAME or, for secrets kept in files, NAME_FILE.
func envValue(name string, getenv func(string) string) (string, bool, error) {
	direct, file := getenv(name), getenv(name+"_FILE")
	switch {
	case direct != "" && file != "":
		return "", false, fmt.Errorf("%s and %s_FILE are both set; set one", name, name)
	case file != "":
		b, err := os.ReadFile(file) //nolint:gosec // the operator names this file on purpose
		if err != nil {
			return "", false, fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), true, nil
	case direct != "":
		return direct, true, nil
	}
	return "", false, nil
}

func (ss *settingSet) set(s *setting, v, source string) {
	s.value, s.source = v, source
	if s.list {
		s.values = splitList(v)
	}
}

// loadFile reads a config file of "name = value" lines (names as the flags,
// '#' starts a comment, list settings comma-separated or repeated).
func (ss *settingSet) loadFile(path string) error {
	f, err := os.Open(path) //nolint:gosec // the operator names the config file
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only
	var problems []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		s := ss.byName[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("config file %s line %d: want name = value", path, n))
		case s == nil:
			problems = append(problems, fmt.Sprintf("config file %s line %d: unknown setting %q", path, n, name))
		case s.isFlag:
		case s.list && seen[name]:
			s.values = append(s.values, splitList(value)...)
			s.value = strings.Join(s.values, ",")
		default:
			ss.set(s, value, "file")
		}
		seen[name] = true
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Sprintf("config file %s: %v", path, err))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// usage writes every setting with its flag, environment name and default.
func (ss *settingSet) usage(w io.Writer) {
	for _, s := range ss.order {
		if s.hidden {
			continue
		}
		def := s.def
		if def == "" {
			def = `""`
		}
		more := ""
		if s.list {
			more = " (repeatable; comma-separated in env/file)"
		}
		fmt.Fprintf(w, "  --%s  (env %s, default %s)%s\n      %s\n", s.name, s.envName(), def, more, s.usage)
	}
}
