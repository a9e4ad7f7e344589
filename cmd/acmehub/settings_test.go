package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadServe(t *testing.T, args []string, env map[string]string) (serveConfig, error) {
	t.Helper()
	ss := serveSettings()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := ss.load(fs, args, func(k string) string { return env[k] }, "config"); err != nil {
		return serveConfig{}, err
	}
	return buildServeConfig(ss)
}

func TestSettingsPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "acmehub.conf")
	secretFile := filepath.Join(dir, "zone.txt")
	if err := os.WriteFile(conf, []byte("# comment\nzone = file.example.org\ntxt-ttl = 30s\nsoa-minimum = 20s\nns = ns1.file.example.org=192.0.2.1\nns = ns2.example.net\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte("fromfile.example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantZone string
		wantTTL  time.Duration
	}{
		{"defaults", nil, nil, defaultZone, 60 * time.Second},
		{"file", []string{"--config", conf}, nil, "file.example.org.", 30 * time.Second},
		{"config path from env", nil, map[string]string{"ACMEHUB_CONFIG": conf}, "file.example.org.", 30 * time.Second},
		{"env over file", []string{"--config", conf}, map[string]string{"ACMEHUB_ZONE": "env.example.org"}, "env.example.org.", 30 * time.Second},
		{"flag over env", []string{"--config", conf, "--zone", "flag.example.org", "--txt-ttl", "10s"},
			map[string]string{"ACMEHUB_ZONE": "env.example.org", "ACMEHUB_TXT_TTL": "20s"}, "flag.example.org.", 10 * time.Second},
		{"_FILE variable", nil, map[string]string{"ACMEHUB_ZONE_FILE": secretFile}, "fromfile.example.org.", 60 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := loadServe(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Zone != tc.wantZone || c.TXTTTL != tc.wantTTL {
				t.Fatalf("zone %q ttl %v, want %q %v", c.Zone, c.TXTTTL, tc.wantZone, tc.wantTTL)
			}
		})
	}
	c, err := loadServe(t, []string{"--config", conf}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nameservers) != 2 || c.Nameservers[0].Name != "ns1.file.example.org." || len(c.Nameservers[0].Addrs) != 1 {
		t.Fatalf("repeated list setting in the file: %+v", c.Nameservers)
	}
	// A list flag replaces the file's list rather than adding to it.
	c, err = loadServe(t, []string{"--config", conf, "--dns-listen", "127.0.0.1:1", "--dns-listen", "[::1]:1"}, nil)
	if err != nil || len(c.DNSListen) != 2 || c.DNSListen[1] != "[::1]:1" {
		t.Fatalf("list flags: %v %v", c.DNSListen, err)
	}
}

func TestSettingsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, err := loadServe(t, []string{"--zone", ".", "--api-listen", "x", "--txt-ttl", "soon", "--max-values-per-name", "0",
		"--value-lifetime", "48h", "--log-format", "xml", "--ns", "ns1.acme.test"}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"zone:", "api-listen:", "txt-ttl:", "max-values-per-name:", "value-lifetime:", "log-format:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	_, err = loadServe(t, nil, map[string]string{"ACMEHUB_ZONE": "a.example", "ACMEHUB_ZONE_FILE": "/x"})
	if err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("NAME and NAME_FILE together: %v", err)
	}
	_, err = loadServe(t, []string{"--config", filepath.Join(t.TempDir(), "missing.conf")}, nil)
	if err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("missing config file: %v", err)
	}
	_, err = loadServe(t, []string{"--api-tls-cert", "a.pem", "--api-proxy-header", "Forwarded", "--api-trusted-proxies", "nonsense"}, nil)
	for _, want := range []string{"api-tls-cert and api-tls-key", "api-proxy-header:", "api-trusted-proxies:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	_, err = loadServe(t, []string{"--api-proxy-header", "x-forwarded-for"}, nil)
	if err == nil || !strings.Contains(err.Error(), "api-trusted-proxies") {
		t.Fatalf("a proxy header without trusted proxies: %v", err)
	}
	_, err = loadServe(t, []string{"--ns", "ns1.acme.test"}, nil)
	if err == nil || !strings.Contains(err.Error(), "glue") {
		t.Fatalf("in-zone nameserver without glue: %v", err)
	}
}

func TestConfigFileUnknownSetting(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "c.conf")
	if err := os.WriteFile(conf, []byte("zone = a.example\nzoen = typo\nnot a setting line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadServe(t, []string{"--config", conf}, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown setting "zoen"`) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("got %v", err)
	}
}

// TestDocsListEverySetting keeps the README table and the example config in
// step with the code.
func TestDocsListEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range serveSettings().order {
		if !strings.Contains(string(readme), "`--"+s.name+"`") || !strings.Contains(string(readme), "`"+s.envName()+"`") {
			t.Errorf("README.md does not document --%s / %s", s.name, s.envName())
		}
	}
	// The example config must load as it is.
	if _, err := loadServe(t, []string{"--config", "../../examples/acmehub.conf"}, nil); err != nil {
		t.Errorf("examples/acmehub.conf: %v", err)
	}
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}} {
		var out strings.Builder
		err := run(t.Context(), args, func(string) string { return "" }, &out, &out)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%v: %v", args, err)
		}
		for _, s := range serveSettings().order {
			if !strings.Contains(out.String(), "--"+s.name) || !strings.Contains(out.String(), s.envName()) {
				t.Errorf("%v does not document --%s", args, s.name)
			}
		}
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "192.0.2.1:1": false, "[::]:1": false, "0.0.0.0:1": false} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(a); got != want {
			t.Errorf("isLoopback(%s) = %v", addr, got)
		}
	}
}
