package acmetest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// certbotTimeout bounds one certbot run; the context kills it after that.
const certbotTimeout = 3 * time.Minute

// certbotHook is the hook script the examples ship, relative to this package.
const certbotHook = "../../examples/certbot/acmehub-hook.sh"

// TestCertbotManualHook issues a real certificate for example.test and
// *.example.test from Pebble with the real certbot (--manual), whose auth
// and cleanup hooks are examples/certbot/acmehub-hook.sh calling acmehub's
// native API with a consumer token read from a 0600 settings file. Pebble
// validates both names through the domain's _acme-challenge CNAME into the
// hub zone, where only the hub's API can put values, so an issued
// certificate proves the hook published both values at once; afterwards
// the cleanup hook must have removed them, and the token's secret must not
// appear in certbot's output or log.
func TestCertbotManualHook(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: certbot issuance skipped in -short mode")
	}
	certbot := certbotTool(t, "certbot")
	certbotTool(t, "curl")
	d := startDelegated(t, "certbot")
	hub, tok, target, pebble := d.hub, d.tok, d.target, d.pebble

	dir := t.TempDir()
	conf := filepath.Join(dir, "acmehub.conf")
	settings := "# acmehub hook settings\nACMEHUB_URL=" + hub.APIURL + "/\nACMEHUB_TOKEN=" + tok.String() + "\n"
	if err := os.WriteFile(conf, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := certbotHookCommand(t, dir)
	cfgDir, logsDir := filepath.Join(dir, "config"), filepath.Join(dir, "logs")
	ctx, cancel := context.WithTimeout(t.Context(), certbotTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, certbot, "certonly",
		"--manual", "--preferred-challenges", "dns",
		"--manual-auth-hook", hook+" auth",
		"--manual-cleanup-hook", hook+" cleanup",
		"--server", pebble.DirectoryURL(),
		"--config-dir", cfgDir, "--work-dir", filepath.Join(dir, "work"), "--logs-dir", logsDir,
		"--agree-tos", "--register-unsafely-without-email", "--non-interactive",
		"--cert-name", "example.test", "-d", "example.test", "-d", "*.example.test")
	// Only what certbot and the hook need; certbot passes it on to the hook.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"REQUESTS_CA_BUNDLE=" + certbotPebbleCA(t, pebble, dir),
		"ACMEHUB_CONFIG=" + conf,
	}
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	DieWithParent(cmd)
	start := time.Now()
	runErr := cmd.Run()
	certbotLog, _ := os.ReadFile(filepath.Join(logsDir, "letsencrypt.log"))
	if runErr != nil {
		t.Fatalf("certbot: %v\n%s\n--- letsencrypt.log ---\n%s", runErr, out.String(), certbotLog)
	}
	t.Logf("certbot issued in %v", time.Since(start).Round(time.Millisecond))

	if got := txtAt(t, hub.DNSAddr, target); len(got) != 0 {
		t.Errorf("values left at %s after certbot's cleanup hook: %q", target, got)
	}
	for what, text := range map[string]string{"output": out.String(), "letsencrypt.log": string(certbotLog)} {
		if strings.Contains(text, tok.Secret) {
			t.Errorf("certbot's %s contains the token's secret", what)
		}
	}
	if want := "acmehub: published _acme-challenge.example.test."; !strings.Contains(string(certbotLog)+out.String(), want) {
		t.Errorf("certbot's output and log lack the auth hook's %q:\n%s", want, out.String())
	}

	chain, err := os.ReadFile(filepath.Join(cfgDir, "live", "example.test", "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, intermediates := parseChain(t, chain)
	if got, want := slices.Sorted(slices.Values(leaf.DNSNames)), []string{"*.example.test", "example.test"}; !slices.Equal(got, want) {
		t.Errorf("SANs %q, want %q", got, want)
	}
	for _, name := range []string{"example.test", "www.example.test"} {
		if _, err := leaf.Verify(x509.VerifyOptions{
			DNSName: name, Roots: pebble.Roots(t), Intermediates: intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("verify the chain for %s against Pebble's root: %v", name, err)
		}
	}
}

// TestCertbotHookScript runs examples/certbot/acmehub-hook.sh by itself
// with /bin/sh, as certbot would, against a running hub: present and clean
// up with settings from the environment (cleanup chosen by
// CERTBOT_AUTH_OUTPUT), and every refusal: each must exit non-zero with
// one clear message that never contains the secret.
func TestCertbotHookScript(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: hook script test skipped in -short mode")
	}
	certbotTool(t, "curl")
	sh := certbotTool(t, "sh")
	hub := StartHub(t, HubConfig{Zone: "acme.test."})
	tok := hub.Consumer(t, "hook", "*.example.test")
	hook := certbotHookPath(t)
	dir := t.TempDir()

	run := func(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, sh, append([]string{hook}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		for _, s := range []string{o.String(), e.String()} {
			if strings.Contains(s, tok.Secret) {
				t.Errorf("the hook printed the token's secret")
			}
		}
		return o.String(), e.String(), err
	}
	good := []string{"ACMEHUB_URL=" + hub.APIURL, "ACMEHUB_TOKEN=" + tok.String(), "ACMEHUB_CONFIG=" + filepath.Join(dir, "none")}
	challenge := func(domain, value string) []string {
		return []string{"CERTBOT_DOMAIN=" + domain, "CERTBOT_VALIDATION=" + value, "CERTBOT_REMAINING_CHALLENGES=0"}
	}

	t.Run("present and clean up", func(t *testing.T) {
		const value = "hookvalue_0123456789-abcdefghijklmnopqrstuv"
		out, errOut, err := run(t, slices.Concat(good, challenge("Example.TEST", value)))
		if err != nil {
			t.Fatalf("auth: %v\n%s", err, errOut)
		}
		m := strings.Fields(out)
		if len(m) < 3 || m[2] != "_acme-challenge.example.test." {
			t.Fatalf("auth printed %q", out)
		}
		target := m[len(m)-1]
		if got := txtAt(t, hub.DNSAddr, target); !slices.Equal(got, []string{value}) {
			t.Fatalf("TXT at %s (the CNAME target the hook printed) = %q, want %q", target, got, value)
		}
		// No argument: CERTBOT_AUTH_OUTPUT (set only for the cleanup hook) decides.
		out, errOut, err = run(t, slices.Concat(good, challenge("example.test", value), []string{"CERTBOT_AUTH_OUTPUT=" + strings.TrimSpace(out)}))
		if err != nil || !strings.Contains(out, "removed 1 value(s) for example.test") {
			t.Fatalf("cleanup: %v, stdout %q, stderr %q", err, out, errOut)
		}
		if got := txtAt(t, hub.DNSAddr, target); len(got) != 0 {
			t.Errorf("TXT at %s after cleanup = %q", target, got)
		}
	})

	loose := filepath.Join(dir, "loose.conf")
	if err := os.WriteFile(loose, []byte("ACMEHUB_URL="+hub.APIURL+"\nACMEHUB_TOKEN="+tok.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	strange := filepath.Join(dir, "strange.conf")
	if err := os.WriteFile(strange, []byte("ACMEHUB_URL="+hub.APIURL+"\n$(touch pwned)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := tok
	wrong.Secret = "ahs_" + strings.Repeat("A", 43)
	closed := certbotClosedPort(t)
	ok := challenge("example.test", "abc")
	tests := []struct {
		name string
		env  []string
		args []string
		want string // in stderr
	}{
		{name: "no settings", env: slices.Concat(ok, []string{"ACMEHUB_CONFIG=" + filepath.Join(dir, "none")}), want: "set ACMEHUB_URL and ACMEHUB_TOKEN"},
		{name: "settings file others can read", env: slices.Concat(ok, []string{"ACMEHUB_CONFIG=" + loose}), want: "lets others read the token"},
		{name: "settings file with code", env: slices.Concat(ok, []string{"ACMEHUB_CONFIG=" + strange}), want: "unknown line"},
		{name: "wrong secret", env: slices.Concat(ok, []string{"ACMEHUB_URL=" + hub.APIURL, "ACMEHUB_TOKEN=" + wrong.String()}), want: "present example.test: HTTP 401 unauthenticated: valid client credentials are required"},
		{name: "token without a dot", env: slices.Concat(ok, []string{"ACMEHUB_URL=" + hub.APIURL, "ACMEHUB_TOKEN=" + tok.Secret}), want: "not of the form"},
		{name: "token with a quote", env: slices.Concat(ok, []string{"ACMEHUB_URL=" + hub.APIURL, "ACMEHUB_TOKEN=a.b\"c"}), want: "not of the form"},
		{name: "out of scope", env: slices.Concat(good, challenge("example.net", "abc")), want: "present example.net: HTTP 403 forbidden"},
		{name: "cleanup out of scope", env: slices.Concat(good, challenge("example.net", "abc")), args: []string{"cleanup"}, want: "clean up example.net: HTTP 403 forbidden"},
		{name: "domain with a quote", env: slices.Concat(good, challenge(`example.test","value":"x`, "abc")), want: "is not a domain name"},
		{name: "domain with a space", env: slices.Concat(good, challenge("exa mple.test", "abc")), want: "is not a domain name"},
		{name: "value not base64url", env: slices.Concat(good, challenge("example.test", "a+b/c=")), want: "CERTBOT_VALIDATION is not base64url"},
		{name: "no domain", env: slices.Concat(good, []string{"CERTBOT_VALIDATION=abc"}), want: "CERTBOT_DOMAIN is not set"},
		{name: "hub unreachable", env: slices.Concat(ok, []string{"ACMEHUB_URL=http://" + closed, "ACMEHUB_TOKEN=" + tok.String()}), want: "cannot reach http://" + closed},
		{name: "not a url", env: slices.Concat(ok, []string{"ACMEHUB_URL=" + strings.TrimPrefix(hub.APIURL, "http://"), "ACMEHUB_TOKEN=" + tok.String()}), want: "must start with https://"},
		{name: "bad argument", env: good, args: []string{"present"}, want: "usage:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(t, tc.env, tc.args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit %v, want status 1; stdout %q, stderr %q", err, out, errOut)
			}
			if !strings.Contains(errOut, "acmehub-hook: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want a message containing %q", errOut, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("the hook ran code from its settings file")
	}
}

// certbotTool finds an external program the certbot tests need: absent, it
// skips the test, or fails it when ACMEHUB_TEST_REQUIRE_ALL=1.
func certbotTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("ACMEHUB_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("internal/acmetest: %s is not installed (ACMEHUB_TEST_REQUIRE_ALL=1)", name)
		}
		t.Skipf("internal/acmetest: %s is not installed", name)
	}
	return p
}

// certbotHookPath is the absolute path of the shipped hook script.
func certbotHookPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(certbotHook)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("hook script: %v", err)
	}
	return p
}

// certbotPebbleCA writes the certificate Pebble's HTTPS listener presents
// (self-signed, see SelfSignedCert) to a PEM file in dir, for certbot's
// REQUESTS_CA_BUNDLE, and returns its path.
func certbotPebbleCA(t *testing.T, p *Pebble, dir string) string {
	t.Helper()
	resp, err := p.HTTPClient().Get(p.DirectoryURL())
	if err != nil {
		t.Fatalf("pebble directory: %v", err)
	}
	_ = resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatal("pebble directory: no TLS peer certificate")
	}
	certs := resp.TLS.PeerCertificates
	root := certs[len(certs)-1]
	path := filepath.Join(dir, "pebble-https-root.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// certbotClosedPort returns a 127.0.0.1 host:port nothing listens on.
func certbotClosedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// certbotHookCommand returns the hook script's path for certbot's hook
// options. certbot runs them with sh but first checks that the command's
// first word, split at white space without any shell quoting, is an
// executable file; so a path with characters sh would treat specially is
// replaced by a copy in dir.
func certbotHookCommand(t *testing.T, dir string) string {
	t.Helper()
	p := certbotHookPath(t)
	if strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return p
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "acmehub-hook.sh")
	if err := os.WriteFile(cp, b, 0o700); err != nil {
		t.Fatal(err)
	}
	return cp
}
