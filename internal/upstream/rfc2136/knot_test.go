package rfc2136

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/acmetest"
)

// knotZone is the zone Knot serves as the upstream in these tests.
const knotZone = "upstream.test."

// knotKey is the TSIG key allowed to update knotZone.
const knotKey = "acmehub-update."

// knot is a running knotd serving knotZone on addr; secret is knotKey's.
type knot struct {
	addr   string
	secret string
}

// startKnot runs knotd in the foreground on a free loopback port with
// knotZone, updatable with knotKey (hmac-sha256), and waits until it
// answers the zone's SOA. It skips when knotd is absent, or fails under
// ACMEHUB_TEST_REQUIRE_ALL=1. The cleanup stops knotd by PID.
func startKnot(t *testing.T) *knot {
	t.Helper()
	tools := map[string]string{}
	for _, tool := range []string{"knotd", "knotc"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			// Knot lives in /usr/sbin, which a user's PATH may lack.
			if q := filepath.Join("/usr/sbin", tool); fileExists(q) {
				p, err = q, nil
			}
		}
		if err != nil {
			if os.Getenv("ACMEHUB_TEST_REQUIRE_ALL") == "1" {
				t.Fatalf("internal/upstream/rfc2136: %s (Debian package knot) is not installed (ACMEHUB_TEST_REQUIRE_ALL=1)", tool)
			}
			t.Skipf("internal/upstream/rfc2136: %s (Debian package knot) is not installed", tool)
		}
		tools[tool] = p
	}

	dir := t.TempDir()
	for _, d := range []string{"run", "db"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	zone := "$ORIGIN " + knotZone + "\n$TTL 60\n" +
		"@ SOA ns.upstream.test. hostmaster.upstream.test. 1 3600 600 86400 60\n" +
		"@ NS ns.upstream.test.\n" +
		"ns A 127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(dir, "upstream.test.zone"), []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &knot{secret: randomSecret(t)}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port := acmetest.FreePort(t)
		conf := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(conf, []byte(knotConf(dir, port, k.secret)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(tools["knotc"], "-c", conf, "conf-check").CombinedOutput(); err != nil {
			t.Fatalf("knotc conf-check: %v\n%s", err, out)
		}
		logs := &acmetest.SyncBuffer{}
		cmd := exec.Command(tools["knotd"], "-c", conf)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logs, logs
		acmetest.DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start knotd: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			select {
			case <-exited:
				return
			default:
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		k.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitSOA(k.addr, exited); lastErr == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("knotd log:\n%s", logs)
				}
			})
			return k
		}
		stop()
		t.Logf("knotd attempt %d on port %d: %v\n%s", attempt, port, lastErr, logs)
	}
	t.Fatalf("knotd did not start: %v", lastErr)
	return nil
}

// knotConf is Knot's configuration: everything under dir, updates kept in
// memory only, knotKey allowed to update the zone.
func knotConf(dir string, port int, secret string) string {
	return fmt.Sprintf(`server:
    rundir: "%[1]s/run"
    listen: 127.0.0.1@%[2]d

database:
    storage: "%[1]s/db"

log:
  - target: stderr
    any: info

key:
  - id: %[3]s
    algorithm: hmac-sha256
    secret: %[4]s

acl:
  - id: update
    key: %[3]s
    action: update

template:
  - id: default
    storage: "%[1]s"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none

zone:
  - domain: %[5]s
    file: "upstream.test.zone"
    acl: update
`, dir, port, knotKey, secret, knotZone)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// waitSOA polls addr until it answers the zone's SOA authoritatively.
func waitSOA(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := query(addr, knotZone, dns.TypeSOA)
		if err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) == 1 {
			return nil
		}
		select {
		case <-exited:
			return errors.New("knotd exited")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SOA answer within 30s (last error %w)", err)
		}
	}
}

func query(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// txtValues asks Knot for the TXT values at name, sorted, each value's
// character-strings joined.
func (k *knot) txtValues(t *testing.T, name string) []string {
	t.Helper()
	r, err := query(k.addr, name, dns.TypeTXT)
	if err != nil {
		t.Fatalf("query %s TXT: %v", name, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		t.Fatalf("query %s TXT: rcode %s", name, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	slices.Sort(out)
	return out
}

// fields are the credential fields of a driver for k.
func (k *knot) fields(extra ...string) map[string]string {
	f := map[string]string{
		"DNSUPDATE_NAMESERVER":     k.addr,
		"DNSUPDATE_TSIG_KEY":       knotKey,
		"DNSUPDATE_TSIG_SECRET":    k.secret,
		"DNSUPDATE_TSIG_ALGORITHM": "hmac-sha256.",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	return f
}
