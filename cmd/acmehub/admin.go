package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/internal/upstream/legoworker"
	"github.com/acmehub/acmehub/internal/upstream/registry"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// The admin commands (principal, role, token, managed-challenge,
// delegation, audit) work on the local database directly, so a fresh
// install can be administered before any token exists. They act through
// the same hub.Service as the API, with a local admin grant named
// "cli:<os user>"; the running server sees their changes through the
// store's generation counters and zone journal, without a restart.

// adminSource is the audit source of every change the CLI makes.
const adminSource = "local"

// adminGroup is a command with verbs: `acmehub <group> <verb> ...`.
type adminGroup struct {
	name    string
	summary string
	verbs   []adminVerb
}

// adminVerb is one `acmehub <group> <verb>`.
type adminVerb struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, e env) error
}

func adminGroups() []adminGroup {
	return []adminGroup{principalGroup(), roleGroup(), tokenGroup(), tsigGroup(), managedGroup(), delegationGroup(), upstreamRecordGroup(), auditGroup()}
}

// groupCommand turns a group into a top-level command.
func (g adminGroup) command() command {
	return command{name: g.name, summary: g.summary, run: g.dispatch}
}

func (g adminGroup) dispatch(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		g.usage(e.stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		g.usage(e.stdout)
		return nil
	}
	for _, v := range g.verbs {
		if v.name == args[0] {
			return v.run(ctx, args[1:], e)
		}
	}
	fmt.Fprintf(e.stderr, "acmehub %s: unknown command %q\n\n", g.name, args[0])
	g.usage(e.stderr)
	return errUsage
}

func (g adminGroup) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: acmehub %s <command> [flags]\n\n%s.\n\nCommands:\n", g.name, upperFirst(g.summary))
	for _, v := range g.verbs {
		fmt.Fprintf(w, "  %-8s %s\n", v.name, v.summary)
	}
	fmt.Fprintf(w, "\nThe commands work on the local database directly (see --data-dir, --db, --config);\n"+
		"a running hub sees their changes at once. Run `acmehub %s <command> --help` for its flags.\n", g.name)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// adminSettings are the settings every admin command shares: where the
// database and key file are, and the serve settings the service needs.
// They come from flags, ACMEHUB_* variables or the serve config file.
func adminSettings() *settingSet {
	ss := dbSettings()
	ss.add("key-file", "", "server key file (default <data-dir>/acmehub.key); created only with a new database")
	ss.add("zone", defaultZone, "the hub zone, as the server has it: delegations get names in it")
	ss.add("max-value-lifetime", "24h", "longest value lifetime a managed challenge may set, as the server has it")
	ss.add("acme-dns-max-accounts", "1000", "most acme-dns accounts one principal may own (0: no cap), as the server has it")
	addCheckSettings(ss) // delegation check and unused report (admin_challenges.go)
	return ss
}

// flagDoc documents one command flag for --help.
type flagDoc struct {
	name, arg, usage string
}

// adminCmd parses one admin command's command line: its own flags (never
// read from the environment or the config file) and the shared settings.
type adminCmd struct {
	path     string // "principal create"
	synopsis string // after "acmehub <path> "
	about    string
	e        env
	fs       *flag.FlagSet
	ss       *settingSet
	docs     []flagDoc
	json     *bool
}

func newAdminCmd(e env, path, synopsis, about string) *adminCmd {
	c := &adminCmd{path: path, synopsis: synopsis, about: about, e: e, ss: adminSettings()}
	c.fs = flag.NewFlagSet("acmehub "+path, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.json = c.fs.Bool("json", false, "print JSON instead of text")
	return c
}

func (c *adminCmd) stringFlag(name, arg, def, usage string) *string {
	c.docs = append(c.docs, flagDoc{name, arg, usage})
	return c.fs.String(name, def, usage)
}

func (c *adminCmd) boolFlag(name, usage string) *bool {
	c.docs = append(c.docs, flagDoc{name, "", usage})
	return c.fs.Bool(name, false, usage)
}

// listFlag is repeatable and takes comma-separated values.
func (c *adminCmd) listFlag(name, arg, usage string) *[]string {
	c.docs = append(c.docs, flagDoc{name, arg, usage + " (repeatable, or comma-separated)"})
	var out []string
	c.fs.Func(name, usage, func(v string) error {
		out = append(out, splitList(v)...)
		return nil
	})
	return &out
}

// given reports whether a flag was on the command line.
func (c *adminCmd) given(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func (c *adminCmd) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: acmehub %s %s\n\n%s\n\nFlags:\n", c.path, c.synopsis, c.about)
	for _, d := range c.docs {
		left := "--" + d.name
		if d.arg != "" {
			left += " " + d.arg
		}
		fmt.Fprintf(w, "  %s\n      %s\n", left, d.usage)
	}
	fmt.Fprintf(w, "  --json\n      print JSON instead of text\n")
	// Any flag declared without a doc entry still gets listed.
	documented := map[string]bool{"json": true}
	for _, d := range c.docs {
		documented[d.name] = true
	}
	c.fs.VisitAll(func(f *flag.Flag) {
		if !documented[f.Name] && c.ss.byName[f.Name] == nil {
			fmt.Fprintf(w, "  --%s\n      %s\n", f.Name, f.Usage)
		}
	})
	fmt.Fprintf(w, "\nDatabase settings (flags win over ACMEHUB_* environment variables, which win over\n"+
		"the config file; the serve config file works as it is):\n")
	c.ss.usage(w)
}

// usageError prints a one-line problem and the synopsis to stderr.
func (c *adminCmd) usageError(format string, args ...any) error {
	fmt.Fprintf(c.e.stderr, "acmehub %s: %s\nUsage: acmehub %s %s (--help lists every flag)\n",
		c.path, fmt.Sprintf(format, args...), c.path, c.synopsis)
	return errUsage
}

// parse reads the command line (flags may come before or after the
// arguments) and the shared settings, and checks that nargs positional
// arguments (named by argName) were given.
func (c *adminCmd) parse(args []string, nargs int, argName string) ([]string, error) {
	// The serve config file may hold settings the admin commands do not
	// use; they are accepted and ignored, as backup does.
	for _, s := range serveSettings().order {
		if c.ss.byName[s.name] == nil {
			h := c.ss.add(s.name, s.def, s.usage)
			h.hidden, h.list = true, s.list
		}
	}
	for _, s := range c.ss.order {
		if s.hidden {
			continue
		}
		if s.list {
			c.fs.Var(listFlag{s}, s.name, s.usage)
		} else {
			c.fs.Var(valueFlag{s}, s.name, s.usage)
		}
	}
	err := c.fs.Parse(interleave(c.fs, args))
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.usage(c.e.stdout)
		return nil, flag.ErrHelp
	case err != nil:
		return nil, c.usageError("%v", err)
	}
	rest := c.fs.Args()
	if nargs < 0 && len(rest) == 0 && argName != "" { // nargs < 0: any number
		return nil, c.usageError("%s is required", argName)
	}
	if nargs >= 0 && len(rest) != nargs {
		switch {
		case nargs == 0:
			return nil, c.usageError("takes no arguments, got %q", rest)
		case len(rest) == 0:
			return nil, c.usageError("%s is required", argName)
		default:
			return nil, c.usageError("takes one argument, %s; got %q", argName, rest)
		}
	}
	// The command line has set the flags it names; now the environment
	// and the config file fill in the rest (a fresh flag set: nothing is
	// parsed twice).
	spare := flag.NewFlagSet(c.path, flag.ContinueOnError)
	spare.SetOutput(io.Discard)
	if _, err := c.ss.load(spare, nil, c.e.getenv, "config"); err != nil {
		return nil, fmt.Errorf("invalid settings:\n  - %w", err)
	}
	return rest, nil
}

// require reports a missing required flag as a usage error.
func (c *adminCmd) require(names ...string) error {
	for _, n := range names {
		if f := c.fs.Lookup(n); f != nil && f.Value.String() == "" && !c.given(n) {
			return c.usageError("--%s is required", n)
		}
	}
	return nil
}

// interleave moves flags that follow positional arguments in front of
// them, so `principal show bob --json` works as `principal show --json bob`.
// "--" ends the flags.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(flags, "--"), pos...)
}

// adminSession is an open database with a service acting for the CLI.
type adminSession struct {
	db     *store.DB
	svc    *hub.Service
	grant  hub.Grant
	zone   string
	stdout io.Writer
	json   bool
	// pool runs lego's providers should a command call one (retrying an
	// upstream record's removal); nothing starts otherwise.
	pool *legoworker.Pool
}

// open opens the database and key file as serve does (a new database gets
// a new key file and the bootstrap admin principal, but no token), and
// builds the service. Close the session when done.
func (c *adminCmd) open(ctx context.Context) (*adminSession, error) {
	var p problems
	ss := c.ss
	dbFile := dbPath(ss)
	keyFile := ss.get("key-file")
	if keyFile == "" {
		keyFile = filepath.Join(ss.get("data-dir"), "acmehub.key")
	}
	zoneName, err := zone.CanonicalOrigin(ss.get("zone"))
	if err != nil {
		p.addf("zone: %v", err)
	}
	sync := strings.ToUpper(ss.get("db-synchronous"))
	if sync != "FULL" && sync != "NORMAL" {
		p.addf("db-synchronous: %q is neither FULL nor NORMAL", ss.get("db-synchronous"))
	}
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(ss.get(name))
		if err != nil || d < 0 {
			p.addf("%s: %q is not a duration such as 60s or 1h", name, ss.get(name))
		}
		return d
	}
	maxLifetime, ttl, lifetime := dur("max-value-lifetime"), dur("txt-ttl"), dur("value-lifetime")
	maxAccounts := positiveInt(&p, ss, "acme-dns-max-accounts", 0, 1<<30)
	checks := readCheckSettings(&p, ss)
	if err := p.err(); err != nil {
		return nil, err
	}

	_, statErr := os.Stat(dbFile)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if fresh {
		if err := os.MkdirAll(filepath.Dir(dbFile), 0o700); err != nil {
			return nil, fmt.Errorf("database directory: %w", err)
		}
	}
	db, err := store.Open(ctx, store.Config{Path: dbFile, Synchronous: sync})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", dbFile, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = db.Close() // the error being returned matters more
		}
	}()
	kr, err := openKeyring(ctx, db, keyFile, dbFile)
	if err != nil {
		return nil, err
	}
	// Like serve: while no token exists, make sure the admin principal
	// does (serve then creates its bootstrap token; the CLI shows none).
	if n, err := db.CountTokens(ctx); err != nil {
		return nil, err
	} else if n == 0 {
		if _, err := adminPrincipal(ctx, db); err != nil {
			return nil, fmt.Errorf("bootstrap admin principal: %w", err)
		}
	}
	if fresh {
		fmt.Fprintf(c.e.stderr, "acmehub: created a new database %s with the key file %s\n", dbFile, keyFile)
	}
	actor := "cli:" + osUser(c.e.getenv)
	pool := legoworker.NewPool(legoworker.PoolConfig{Resolvers: checks.cfg.Recursive})
	svc := hub.New(auditAsCLI{DB: db, actor: actor}, kr, hub.Config{
		Zone:               zoneName,
		DefaultTTL:         ttl,
		DefaultLifetime:    lifetime,
		MaxValueLifetime:   maxLifetime,
		ACMEDNSMaxAccounts: maxAccounts,
		Logger:             slog.New(slog.NewTextHandler(c.e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		DNSCheck:           checks.client(),
		UnusedAfter:        checks.unusedAfter,
		Upstreams:          registry.New(upstream.Options{}, pool),
	})
	ok = true
	return &adminSession{
		db: db, svc: svc, zone: zoneName, stdout: c.e.stdout, json: *c.json, pool: pool,
		grant: hub.Grant{Principal: hub.Principal{Name: actor}, Assignments: []hub.Assignment{{Role: hub.RoleAdmin}}},
	}, nil
}

// Close stops any lego worker and closes the database.
func (s *adminSession) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.pool.Close(ctx) // workers only run a removal's retry; the database matters more
	return s.db.Close()
}

// withSession opens a session, runs f and closes the session, reporting
// the first error.
func (c *adminCmd) withSession(ctx context.Context, f func(s *adminSession) error) (err error) {
	s, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	if err := f(s); err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	return nil
}

// auditAsCLI is the store as the CLI's service sees it: audit events name
// the CLI's actor (in token_id, since no token is involved) and the source
// "local".
type auditAsCLI struct {
	*store.DB
	actor string
}

func (a auditAsCLI) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	if ev.TokenID == "" {
		ev.TokenID = a.actor
	}
	if ev.Source == "" {
		ev.Source = adminSource
	}
	return a.DB.AppendAudit(ctx, ev)
}

var _ hub.Store = auditAsCLI{}

// osUser names the operating system user running the CLI.
func osUser(getenv func(string) string) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := getenv("USER"); u != "" {
		return u
	}
	return "uid-" + strconv.Itoa(os.Getuid())
}

// printJSON writes v as indented JSON.
func (s *adminSession) printJSON(v any) error {
	enc := json.NewEncoder(s.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// principalID resolves a principal name (or, failing that, a numeric id)
// to its id.
func (s *adminSession) principalID(ctx context.Context, name string) (int64, error) {
	p, err := s.db.PrincipalByName(ctx, name)
	if err == nil {
		return p.ID, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("find principal %q: %w", name, err)
	}
	if id, perr := strconv.ParseInt(name, 10, 64); perr == nil && id > 0 {
		if _, err := s.db.Principal(ctx, id); err == nil {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no principal named %q (see `acmehub principal list`)", name)
}

// principalNames maps principal ids to names, for showing owners.
func (s *adminSession) principalNames(ctx context.Context) (map[int64]string, error) {
	ps, err := s.db.ListPrincipals(ctx)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	out := make(map[int64]string, len(ps))
	for _, p := range ps {
		out[p.ID] = p.Name
	}
	return out, nil
}

// configID resolves a managed challenge name (or, failing that, a numeric
// id) to its id.
func (s *adminSession) configID(ctx context.Context, name string) (int64, error) {
	c, err := s.db.ConfigByName(ctx, name)
	if err == nil {
		return c.ID, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("find managed challenge %q: %w", name, err)
	}
	if id, perr := strconv.ParseInt(name, 10, 64); perr == nil && id > 0 {
		if _, err := s.db.Config(ctx, id); err == nil {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no managed challenge named %q (see `acmehub managed-challenge list`)", name)
}

// Text output helpers.

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
