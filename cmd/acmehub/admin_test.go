package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// cliResult is what one in-process `acmehub ...` run printed and returned.
type cliResult struct {
	stdout, stderr string
	err            error
}

// runCLI runs acmehub in-process against the data directory dir.
func runCLI(t *testing.T, dir string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--data-dir", dir)
	err := run(t.Context(), args, func(string) string { return "" }, &out, &errOut)
	return cliResult{out.String(), errOut.String(), err}
}

// mustCLI runs acmehub and fails the test on an error.
func mustCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := runCLI(t, dir, args...)
	if r.err != nil {
		t.Fatalf("acmehub %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// cliJSON runs acmehub with --json and decodes its output into v.
func cliJSON(t *testing.T, dir string, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, dir, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("acmehub %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// setupConsumer creates, through the CLI, an app principal holding the
// consumer role for *.example.org, a managed challenge for the same rule
// and a token, and returns the token's JSON.
func setupConsumer(t *testing.T, dir string) issuedTokenJSON {
	t.Helper()
	mustCLI(t, dir, "principal", "create", "--name", "shop", "--kind", "app", "--description", "the shop's cert-manager")
	mustCLI(t, dir, "role", "add", "--principal", "shop", "--role", "managed_challenge_consumer", "--domains", "*.example.org")
	mustCLI(t, dir, "managed-challenge", "create", "--name", "example-org", "--rule", "*.example.org", "--ttl", "30s")
	var tok issuedTokenJSON
	cliJSON(t, dir, &tok, "token", "create", "--principal", "shop", "--title", "cert-manager",
		"--allow-cidr", "10.0.0.0/8,127.0.0.0/8", "--allow-cidr", "::1/128", "--expires-in", "720h")
	return tok
}

func TestAdminCLIFreshInstall(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	r := runCLI(t, dir, "principal", "list")
	if r.err != nil {
		t.Fatalf("principal list on a fresh install: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "created a new database") {
		t.Errorf("no note about the new database on stderr: %q", r.stderr)
	}
	st, err := os.Stat(filepath.Join(dir, "acmehub.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	var ps []api.PrincipalJSON
	cliJSON(t, dir, &ps, "principal", "list")
	if len(ps) != 1 || ps[0].Name != "admin" || len(ps[0].Roles) != 1 || ps[0].Roles[0].Role != "admin" || ps[0].Roles[0].Domains != "" {
		t.Fatalf("a fresh install should hold the bootstrap admin principal: %+v", ps)
	}
	var toks []tokenJSON
	cliJSON(t, dir, &toks, "token", "list")
	if len(toks) != 0 {
		t.Fatalf("the CLI created a token by itself: %+v", toks)
	}
	if _, err := os.Stat(filepath.Join(dir, "bootstrap-admin-token")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the CLI wrote a bootstrap token file: %v", err)
	}
	if strings.Contains(r.stdout+r.stderr, "ahs_") {
		t.Fatalf("the CLI printed a secret:\n%s%s", r.stdout, r.stderr)
	}

	// The key file belongs to the database: without it nothing opens.
	if err := os.Rename(filepath.Join(dir, "acmehub.key"), filepath.Join(dir, "moved.key")); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, dir, "principal", "list")
	if r.err == nil || errors.Is(r.err, errUsage) || !strings.Contains(r.err.Error(), "acmehub.key does not exist") {
		t.Fatalf("missing key file: %v", r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acmehub.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a new key file was created for an existing database")
	}
	mustCLI(t, dir, "principal", "list", "--key-file", filepath.Join(dir, "moved.key"))
}

func TestAdminCLIWorkflow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := setupConsumer(t, dir)

	// The token is printed once, whole and in parts.
	if tok.ClientID == "" || tok.ClientSecret == "" || tok.Token != tok.ClientID+"."+tok.ClientSecret {
		t.Fatalf("token json: %+v", tok)
	}
	cred, err := secret.ParseToken(tok.Token)
	if err != nil {
		t.Fatalf("printed token: %v", err)
	}
	if tok.Principal != "shop" || tok.Status != "active" || tok.ExpiresAt == nil ||
		strings.Join(tok.AllowCIDRs, " ") != "10.0.0.0/8 127.0.0.0/8 ::1/128" {
		t.Fatalf("token fields: %+v", tok)
	}
	text := mustCLI(t, dir, "token", "create", "--principal", "shop", "--roles", "managed_challenge_consumer")
	if strings.Count(text, "ahs_") != 2 || !strings.Contains(text, "client id:") || !strings.Contains(text, "client secret:") {
		t.Fatalf("token create text output:\n%s", text)
	}

	// Lists parse and show what was made.
	var ps []api.PrincipalJSON
	cliJSON(t, dir, &ps, "principal", "list")
	if len(ps) != 2 || ps[1].Name != "shop" || ps[1].Kind != "app" || len(ps[1].Roles) != 1 || ps[1].Roles[0].Domains != "*.example.org" {
		t.Fatalf("principal list: %+v", ps)
	}
	var toks []tokenJSON
	cliJSON(t, dir, &toks, "token", "list", "--principal", "shop")
	if len(toks) != 2 {
		t.Fatalf("token list: %+v", toks)
	}
	var ms []api.ManagedChallengeJSON
	cliJSON(t, dir, &ms, "managed-challenge", "list")
	if len(ms) != 1 || ms[0].Rule != "*.example.org" || ms[0].TTL != 30 || ms[0].Provider != "delegated" || !strings.HasPrefix(ms[0].CreatedBy, "cli:") {
		t.Fatalf("managed-challenge list: %+v", ms)
	}

	// A delegation prints the CNAME to add, in the hub zone.
	out := mustCLI(t, dir, "delegation", "create", "www.example.org")
	if !strings.Contains(out, "_acme-challenge.www.example.org. CNAME ") || !strings.Contains(out, "."+defaultZone+"\n") {
		t.Fatalf("delegation create:\n%s", out)
	}
	var d delegationJSON
	cliJSON(t, dir, &d, "delegation", "show", "*.www.example.org")
	if d.Domain != "www.example.org" || d.Config != "example-org" || !strings.HasSuffix(d.Target, "."+defaultZone) || !strings.Contains(out, d.CNAME.ZoneLine) {
		t.Fatalf("delegation show: %+v", d)
	}
	if r := runCLI(t, dir, "delegation", "create", "example.net"); r.err == nil || !strings.Contains(r.err.Error(), "no managed challenge config matches example.net") {
		t.Fatalf("delegation for an unmatched domain: %v", r.err)
	}
	// Delegation names go into the server's zone only.
	r := runCLI(t, dir, "delegation", "create", "shop.example.org", "--zone", "other.test")
	if r.err == nil || !strings.Contains(r.err.Error(), "zone") {
		t.Fatalf("a delegation in another zone: %v", r.err)
	}

	// Disable, enable, role removal, revocation, deletion.
	mustCLI(t, dir, "principal", "disable", "shop")
	var p struct {
		api.PrincipalJSON
		Tokens []tokenJSON `json:"tokens"`
	}
	cliJSON(t, dir, &p, "principal", "show", "shop")
	if p.Enabled || len(p.Tokens) != 2 {
		t.Fatalf("principal show after disable: %+v", p)
	}
	mustCLI(t, dir, "principal", "enable", "shop")
	var revoked tokenJSON
	cliJSON(t, dir, &revoked, "token", "revoke", cred.ClientID)
	if revoked.Status != "revoked" {
		t.Fatalf("token revoke: %+v", revoked)
	}
	mustCLI(t, dir, "role", "remove", "--principal", "shop", "--id", itoa(p.Roles[0].ID))
	var roles []api.RoleJSON
	cliJSON(t, dir, &roles, "role", "list", "--principal", "shop")
	if len(roles) != 0 {
		t.Fatalf("roles after remove: %+v", roles)
	}
	// The last admin stays.
	for _, args := range [][]string{{"principal", "disable", "admin"}, {"principal", "delete", "admin"}} {
		if r := runCLI(t, dir, args...); r.err == nil || !strings.Contains(r.err.Error(), "no enabled principal with the admin role") {
			t.Fatalf("%v: %v", args, r.err)
		}
	}
	mustCLI(t, dir, "principal", "delete", "shop")
	cliJSON(t, dir, &toks, "token", "list")
	if len(toks) != 0 {
		t.Fatalf("tokens of a deleted principal: %+v", toks)
	}

	// Every change is audited with the CLI as the actor and source
	// "local"; the secrets are nowhere.
	var evs []auditEventJSON
	cliJSON(t, dir, &evs, "audit", "list", "--since", "1h", "--limit", "1000")
	actions := map[string]bool{}
	for _, ev := range evs {
		actions[ev.Action+" "+ev.Result] = true
		if ev.Source != "local" || !strings.HasPrefix(ev.TokenID, "cli:") || ev.PrincipalID != 0 {
			t.Errorf("audit event without the CLI as actor: %+v", ev)
		}
	}
	for _, want := range []string{"principal.create ok", "role.add ok", "config.create ok", "token.create ok", "delegation.create ok",
		"delegation.create denied", "principal.update ok", "token.revoke ok", "role.remove ok", "principal.update refused", "principal.delete ok"} {
		if !actions[want] {
			t.Errorf("no audit event %q in %v", want, actions)
		}
	}
	cliJSON(t, dir, &evs, "audit", "list", "--action", "token.create", "--result", "ok")
	if len(evs) != 2 {
		t.Fatalf("audit list --action token.create: %+v", evs)
	}
	cliJSON(t, dir, &evs, "audit", "list", "--domain", "*.www.example.org")
	if len(evs) != 1 || evs[0].Action != "delegation.create" {
		t.Fatalf("audit list --domain: %+v", evs)
	}
	auditText := mustCLI(t, dir, "audit", "list")
	if !strings.Contains(auditText, " local ") || !strings.Contains(auditText, "token.create") {
		t.Fatalf("audit list text:\n%s", auditText)
	}
	for _, leak := range []string{tok.ClientSecret, cred.Secret} {
		if strings.Contains(auditText, leak) {
			t.Fatal("a token secret is in the audit log")
		}
		files, _ := filepath.Glob(filepath.Join(dir, "acmehub.db*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(leak)) {
				t.Fatalf("a token secret is in %s", f)
			}
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestAdminCLITieRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustCLI(t, dir, "managed-challenge", "create", "--name", "first", "--rule", "*.example.org")
	r := runCLI(t, dir, "managed-challenge", "create", "--name", "second", "--rule", "example.net; *.example.org")
	if r.err == nil || errors.Is(r.err, errUsage) {
		t.Fatalf("a tying rule was not refused: %v\n%s", r.err, r.stdout)
	}
	msg := r.err.Error()
	for _, want := range []string{"ties with another managed challenge", `"first"`, `"*.example.org"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("tie error lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("the error is not one line: %q", msg)
	}
	// The same through update.
	mustCLI(t, dir, "managed-challenge", "create", "--name", "second", "--rule", "example.net")
	if r := runCLI(t, dir, "managed-challenge", "update", "second", "--rule", "*.example.org"); r.err == nil || !strings.Contains(r.err.Error(), "ties with") {
		t.Fatalf("a tying update was not refused: %v", r.err)
	}
	var ms []api.ManagedChallengeJSON
	cliJSON(t, dir, &ms, "managed-challenge", "list")
	if len(ms) != 2 || ms[1].Rule != "example.net" {
		t.Fatalf("configs after the refusals: %+v", ms)
	}
}

func TestAdminCLIUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"group alone", []string{"principal"}, "Usage: acmehub principal <command>"},
		{"unknown verb", []string{"token", "mint"}, `unknown command "mint"`},
		{"missing flag", []string{"principal", "create", "--kind", "app"}, "--name is required"},
		{"unknown flag", []string{"principal", "list", "--verbose"}, "flag provided but not defined"},
		{"missing argument", []string{"principal", "show"}, "the principal's name is required"},
		{"extra argument", []string{"delegation", "delete", "a.example.org", "b.example.org"}, "takes one argument"},
		{"bad duration", []string{"token", "create", "--principal", "admin", "--expires-in", "soon"}, "--expires-in"},
		{"bad ttl", []string{"managed-challenge", "create", "--name", "x", "--rule", "*", "--ttl", "1.5s"}, "--ttl"},
		{"bad id", []string{"role", "remove", "--principal", "admin", "--id", "first"}, "--id"},
		{"bad limit", []string{"audit", "list", "--limit", "0"}, "--limit"},
		{"bad since", []string{"audit", "list", "--since", "yesterday"}, "--since"},
		{"exclusive", []string{"delegation", "list", "--unbound", "--managed-challenge", "x"}, "exclude each other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, dir, tc.args...)
			if !errors.Is(r.err, errUsage) {
				t.Fatalf("want a usage error, got %v", r.err)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
		})
	}
	// Errors that are not about the command line are one line each.
	for _, args := range [][]string{
		{"principal", "show", "nobody"},
		{"principal", "create", "--name", "x", "--kind", "robot"},
		{"role", "add", "--principal", "admin", "--role", "root"},
		{"managed-challenge", "delete", "nothing"},
		{"delegation", "show", "example.org"},
		{"token", "revoke", "ahc_unknown"},
	} {
		r := runCLI(t, dir, args...)
		if r.err == nil || errors.Is(r.err, errUsage) || strings.Contains(r.err.Error(), "\n") {
			t.Errorf("%v: want a one-line error, got %v", args, r.err)
		}
	}
}

// TestAdminCLIHelp: every command's --help lists its flags and the shared
// database settings.
func TestAdminCLIHelp(t *testing.T) {
	t.Parallel()
	shared := []string{"--json", "--config", "--data-dir", "--db", "--key-file", "--zone", "ACMEHUB_DATA_DIR"}
	want := map[string][]string{
		"principal create":         {"--name", "--kind", "--description", "--disabled"},
		"principal list":           nil,
		"principal show":           nil,
		"principal update":         {"--description"},
		"principal disable":        nil,
		"principal enable":         nil,
		"principal delete":         nil,
		"role add":                 {"--principal", "--role", "--domains"},
		"role list":                {"--principal"},
		"role remove":              {"--principal", "--id"},
		"token create":             {"--principal", "--title", "--description", "--roles", "--allow-cidr", "--expires-in"},
		"token list":               {"--principal"},
		"token show":               nil,
		"token revoke":             nil,
		"managed-challenge create": {"--name", "--rule", "--ttl", "--lifetime", "--provider", "--credential", "--engine"},
		"managed-challenge list":   nil,
		"managed-challenge show":   nil,
		"managed-challenge update": {"--rename", "--rule", "--ttl", "--lifetime", "--provider", "--credential", "--engine"},
		"managed-challenge delete": nil,
		"delegation create":        nil,
		"delegation list":          {"--managed-challenge", "--unbound", "--under", "--limit", "--state", "--unused"},
		"delegation onboard":       {"--zone-file", "--origin"},
		"delegation check":         nil,
		"delegation show":          nil,
		"delegation delete":        nil,
		"delegation move":          {"--to"},
		"tsig create":              {"--principal", "--name", "--algorithm", "--title", "--roles", "--allow-cidr", "--expires-in", "--server", "--port", "--format", "--out"},
		"tsig list":                {"--principal"},
		"tsig show":                nil,
		"tsig revoke":              nil,
		"upstream-record list":     {"--state"},
		"upstream-record retry":    nil,
		"upstream-record forget":   nil,
		"audit list":               {"--since", "--until", "--principal", "--domain", "--action", "--result", "--managed-challenge", "--limit", "--before"},
	}
	seen := 0
	for _, g := range adminGroups() {
		var top bytes.Buffer
		if err := run(t.Context(), []string{g.name, "--help"}, func(string) string { return "" }, &top, &top); err != nil {
			t.Fatalf("%s --help: %v", g.name, err)
		}
		for _, v := range g.verbs {
			path := g.name + " " + v.name
			flags, ok := want[path]
			if !ok {
				t.Errorf("no expectation for %q: add it to this test", path)
			}
			seen++
			if !strings.Contains(top.String(), "  "+v.name+" ") {
				t.Errorf("%s --help does not list %s", g.name, v.name)
			}
			var out bytes.Buffer
			err := run(t.Context(), []string{g.name, v.name, "--help"}, func(string) string { return "" }, &out, &out)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("%s --help: %v", path, err)
			}
			for _, f := range append(flags, shared...) {
				if !strings.Contains(out.String(), f) {
					t.Errorf("%s --help does not list %s:\n%s", path, f, out.String())
				}
			}
		}
	}
	if seen != len(want) {
		t.Errorf("tested %d commands, expected %d", seen, len(want))
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, g := range adminGroups() {
		if !strings.Contains(out.String(), "  "+g.name+" ") {
			t.Errorf("acmehub --help does not list %s", g.name)
		}
	}
}

// TestAdminCLISettings: the database settings come from flags, the
// environment or the serve config file, like serve's.
func TestAdminCLISettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "acmehub.conf")
	data := filepath.Join(dir, "from-file")
	if err := os.WriteFile(conf, []byte("data-dir = "+data+"\nzone = hub.example.net\napi-listen = 127.0.0.1:9999\nlog-format = text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	env := map[string]string{"ACMEHUB_CONFIG": conf}
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"managed-challenge", "create", "--name", "all", "--rule", "*"},
		{"delegation", "create", "example.org", "--json"},
	} {
		out.Reset()
		if err := run(t.Context(), args, getenv, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
	}
	var d delegationJSON
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || !strings.HasSuffix(d.Target, ".hub.example.net.") {
		t.Fatalf("delegation with the config file's zone: %+v %v", d, err)
	}
	if _, err := os.Stat(filepath.Join(data, "acmehub.db")); err != nil {
		t.Fatalf("the config file's data-dir was not used: %v", err)
	}
	// A flag wins over the environment, which wins over the file.
	env["ACMEHUB_DATA_DIR"] = filepath.Join(dir, "from-env")
	out.Reset()
	if err := run(t.Context(), []string{"managed-challenge", "list", "--json"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "[]\n" {
		t.Fatalf("ACMEHUB_DATA_DIR did not win over the file: %s", out.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"managed-challenge", "list", "--json", "--data-dir", data}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"name": "all"`) {
		t.Fatalf("--data-dir did not win over the environment: %s", out.String())
	}
}

// TestAdminCLIReachesRunningServer: a server process holding its own
// handle on the database, its service caches and its DNS view sees what
// the CLI changes, without a restart: tokens, principals and configs
// through their generation counters, delegations through the journal.
func TestAdminCLIReachesRunningServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := setupConsumer(t, dir)
	cred, err := secret.ParseToken(tok.Token)
	if err != nil {
		t.Fatal(err)
	}

	// The "server": its own store handle, service and followed view.
	ctx := t.Context()
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "acmehub.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	kr, err := secret.LoadKeyFile(filepath.Join(dir, "acmehub.key"))
	if err != nil {
		t.Fatal(err)
	}
	svc := hub.New(db, kr, hub.Config{Zone: defaultZone, DefaultTTL: time.Minute, DefaultLifetime: time.Hour, MaxValueLifetime: 24 * time.Hour})
	view := zone.NewView(defaultZone)
	follower := zone.NewFollower(db, view, slog.New(slog.DiscardHandler), 50*time.Millisecond)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = follower.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	<-follower.Ready()

	src := netip.MustParseAddr("127.0.0.1")
	present := func(identifier string) (hub.Challenge, error) {
		g, err := svc.Authenticate(ctx, cred, src)
		if err != nil {
			return hub.Challenge{}, err
		}
		return svc.Present(ctx, g, hub.PresentRequest{Identifier: identifier, Value: "v-" + identifier, Source: src})
	}
	// eventually waits until check passes, failing after 3 s.
	eventually := func(what string, check func() error) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := check()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	ch, err := present("www.example.org")
	if err != nil {
		t.Fatalf("present with the CLI's token: %v", err)
	}
	eventually("the value in the view", func() error {
		if r := view.Lookup(ch.Target); r.Kind != zone.KindTXT {
			return errors.New(r.Kind.String())
		}
		return nil
	})
	// The service has now cached the configs; the CLI changes the rule.
	mustCLI(t, dir, "managed-challenge", "update", "example-org", "--rule", "*.example.net")
	eventually("the new rule", func() error {
		if _, err := present("shop.example.org"); !errors.Is(err, hub.ErrForbidden) {
			return errors.New("still allowed")
		}
		return nil
	})
	mustCLI(t, dir, "managed-challenge", "update", "example-org", "--rule", "*.example.org")
	eventually("the rule back", func() error { _, err := present("shop.example.org"); return err })

	// Deleting the delegation takes its name out of the served zone.
	mustCLI(t, dir, "delegation", "delete", "www.example.org")
	eventually("the delegation gone from the view", func() error {
		if r := view.Lookup(ch.Target); r.Kind != zone.KindNXDomain {
			return errors.New(r.Kind.String())
		}
		return nil
	})

	// Disabling the principal, then revoking the token, refuse it.
	mustCLI(t, dir, "principal", "disable", "shop")
	eventually("the disabled principal refused", func() error {
		if _, err := present("shop.example.org"); !errors.Is(err, hub.ErrUnauthenticated) {
			return errors.New("still accepted")
		}
		return nil
	})
	mustCLI(t, dir, "principal", "enable", "shop")
	eventually("the enabled principal accepted", func() error { _, err := present("shop.example.org"); return err })
	mustCLI(t, dir, "token", "revoke", cred.ClientID)
	eventually("the revoked token refused", func() error {
		if _, err := present("shop.example.org"); !errors.Is(err, hub.ErrUnauthenticated) {
			return errors.New("still accepted")
		}
		return nil
	})
}
