package main

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/acmehub/acmehub/api"
)

// bindKeyRE matches the key clause `acmehub tsig create` prints, as
// named.conf and nsupdate -k read it.
var bindKeyRE = regexp.MustCompile(`(?m)^key "([a-z0-9_.-]+\.)" \{\n\talgorithm (hmac-[a-z0-9]+);\n\tsecret "([A-Za-z0-9+/]+=*)";\n\};$`)

// iniValues reads `name = value` lines (certbot's ini) or `NAME=value`
// lines (an env file), skipping comments.
func iniValues(s, sep string) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, sep); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out
}

func TestAdminCLITSIG(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	setupConsumer(t, dir) // principal "shop"

	// Every form, under headings.
	out := mustCLI(t, dir, "tsig", "create", "--principal", "shop", "--algorithm", "HMAC-SHA1", "--title", "certbot",
		"--server", "192.0.2.53", "--port", "5353", "--allow-cidr", "192.0.2.0/24", "--expires-in", "720h")
	m := bindKeyRE.FindStringSubmatch(out)
	if m == nil || m[2] != "hmac-sha1" {
		t.Fatalf("no BIND key clause in:\n%s", out)
	}
	name, sec := m[1], m[3]
	if raw, err := base64.StdEncoding.DecodeString(sec); err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, %v", sec, len(raw), err)
	}
	for _, h := range []string{"## BIND key clause", "## certbot-dns-rfc2136 credentials", "## lego rfc2136 environment", "## cert-manager Secret"} {
		if !strings.Contains(out, h) {
			t.Errorf("heading %q missing:\n%s", h, out)
		}
	}
	ini := iniValues(out, " = ")
	if ini["dns_rfc2136_server"] != "192.0.2.53" || ini["dns_rfc2136_port"] != "5353" || ini["dns_rfc2136_name"] != name ||
		ini["dns_rfc2136_secret"] != sec || ini["dns_rfc2136_algorithm"] != "HMAC-SHA1" {
		t.Fatalf("certbot ini %v", ini)
	}
	env := iniValues(out, "=")
	if env["DNSUPDATE_NAMESERVER"] != "192.0.2.53:5353" || env["DNSUPDATE_TSIG_KEY"] != name ||
		env["DNSUPDATE_TSIG_SECRET"] != sec || env["DNSUPDATE_TSIG_ALGORITHM"] != "hmac-sha1." {
		t.Fatalf("lego env %v", env)
	}
	if !strings.Contains(out, "  tsig-secret-key: "+base64.StdEncoding.EncodeToString([]byte(sec))+"\n") ||
		!strings.Contains(out, "tsigAlgorithm: HMACSHA1") {
		t.Fatalf("cert-manager form:\n%s", out)
	}

	// One form, to a file: mode 0600, nothing secret on stdout.
	file := filepath.Join(t.TempDir(), "nsupdate.key")
	out = mustCLI(t, dir, "tsig", "create", "--principal", "shop", "--name", "NSupdate.Example.org", "--format", "bind", "--out", file)
	if !strings.Contains(out, "created TSIG key nsupdate.example.org. (hmac-sha256)") {
		t.Fatalf("stdout %q", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fm := bindKeyRE.FindStringSubmatch(string(data))
	if fm == nil || fm[0]+"\n" != string(data) || fm[1] != "nsupdate.example.org." || strings.Contains(out, fm[3]) {
		t.Fatalf("key file:\n%s\nstdout %q", data, out)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", st.Mode(), err)
	}
	// A bare form is just that form.
	out = mustCLI(t, dir, "tsig", "create", "--principal", "shop", "--format", "lego", "--server", "2001:db8::53")
	if !strings.HasPrefix(out, "# lego") || !strings.Contains(out, "DNSUPDATE_NAMESERVER=[2001:db8::53]:53\n") || strings.Contains(out, "##") {
		t.Fatalf("lego form:\n%s", out)
	}

	// --json carries the secret and the forms, once.
	var issued api.IssuedTSIGKeyJSON
	cliJSON(t, dir, &issued, "tsig", "create", "--principal", "shop", "--algorithm", "hmac-md5", "--roles", "managed_challenge_consumer")
	if issued.Algorithm != "hmac-md5" || issued.Secret == "" || issued.Principal != "shop" ||
		!strings.Contains(issued.Forms.BIND, issued.Secret) || len(issued.Roles) != 1 ||
		!strings.Contains(issued.Forms.Certbot, api.TSIGPlaceholderServer) {
		t.Fatalf("json %+v", issued)
	}

	// Listing and showing never print a secret.
	list := mustCLI(t, dir, "tsig", "list", "--principal", "shop")
	for _, s := range []string{sec, fm[3], issued.Secret} {
		if strings.Contains(list, s) {
			t.Fatalf("list shows a secret:\n%s", list)
		}
	}
	if strings.Count(list, "\n") != 5 || !strings.Contains(list, name) || !strings.Contains(list, "nsupdate.example.org.") {
		t.Fatalf("list:\n%s", list)
	}
	var keys []tsigKeyJSON
	cliJSON(t, dir, &keys, "tsig", "list")
	if len(keys) != 4 || keys[0].Principal != "shop" {
		t.Fatalf("list --json %+v", keys)
	}
	show := mustCLI(t, dir, "tsig", "show", strings.ToUpper(name))
	if !strings.Contains(show, "name:       "+name) || !strings.Contains(show, "sources:    192.0.2.0/24") || strings.Contains(show, sec) {
		t.Fatalf("show:\n%s", show)
	}
	// TSIG keys are not among the API tokens.
	if tokens := mustCLI(t, dir, "token", "list"); strings.Contains(tokens, name) {
		t.Fatalf("token list shows a TSIG key:\n%s", tokens)
	}

	if out := mustCLI(t, dir, "tsig", "revoke", name); out != "revoked TSIG key "+name+"\n" {
		t.Fatalf("revoke: %q", out)
	}
	var k tsigKeyJSON
	cliJSON(t, dir, &k, "tsig", "show", name)
	if k.Status != "revoked" || k.RevokedAt == nil {
		t.Fatalf("after revoke %+v", k)
	}

	// The audit log has the creations, without secrets.
	audit := mustCLI(t, dir, "audit", "list", "--action", "tsig.create")
	if strings.Count(audit, "tsig.create") != 4 || strings.Contains(audit, sec) {
		t.Fatalf("audit:\n%s", audit)
	}

	for _, args := range [][]string{
		{"tsig", "create", "--principal", "shop", "--format", "pem"},
		{"tsig", "create", "--principal", "shop", "--port", "0"},
		{"tsig", "create"},
		{"tsig", "show"},
	} {
		if r := runCLI(t, dir, args...); !errors.Is(r.err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, r.err)
		}
	}
	for _, args := range [][]string{
		{"tsig", "create", "--principal", "nobody"},
		{"tsig", "create", "--principal", "shop", "--algorithm", "hmac-sha3"},
		{"tsig", "create", "--principal", "shop", "--name", "nsupdate.example.org"},
		{"tsig", "show", "nope.example."},
	} {
		if r := runCLI(t, dir, args...); r.err == nil {
			t.Errorf("%v succeeded:\n%s", args, r.stdout)
		}
	}
}
