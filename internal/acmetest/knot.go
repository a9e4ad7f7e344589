package acmetest

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
)

// knotKeyName is the TSIG key StartKnot allows to update its zone.
const knotKeyName = "acmehub-update."

// Knot is a running knotd, the real upstream DNS of the upstream-provider
// tests: one zone, updatable by DNS UPDATE signed with one TSIG key.
type Knot struct {
	// Addr is knotd's host:port on 127.0.0.1 (UDP and TCP).
	Addr string
	// Zone is the zone it serves, fully qualified.
	Zone string
	// KeyName, Secret (base64) and Algorithm ("hmac-sha256.") are the TSIG
	// key allowed to update Zone.
	KeyName, Secret, Algorithm string

	stop func()
}

// StartKnot runs knotd in the foreground on a free loopback port serving
// zone (SOA, NS and the nameserver's A record, nothing else), updatable by
// a fresh hmac-sha256 TSIG key, and waits until it answers the zone's SOA.
// Updates are kept in memory only. It skips the test when knotd or knotc
// (Debian package knot) is absent, or fails it under
// ACMEHUB_TEST_REQUIRE_ALL=1. t.Cleanup stops knotd by PID.
func StartKnot(t *testing.T, zone string) *Knot {
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
				t.Fatalf("internal/acmetest (knot): %s (Debian package knot) is not installed (ACMEHUB_TEST_REQUIRE_ALL=1)", tool)
			}
			t.Skipf("internal/acmetest (knot): %s (Debian package knot) is not installed", tool)
		}
		tools[tool] = p
	}

	zone = dns.CanonicalName(zone)
	dir := t.TempDir()
	for _, d := range []string{"run", "db"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	zoneText := "$ORIGIN " + zone + "\n$TTL 60\n" +
		"@ SOA ns hostmaster 1 3600 600 86400 60\n" +
		"@ NS ns\n" +
		"ns A 127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(dir, "zone"), []byte(zoneText), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &Knot{Zone: zone, KeyName: knotKeyName, Secret: RandomTSIGSecret(t), Algorithm: dns.HmacSHA256}
	var lastErr error
	// A port free a moment ago may be taken by the time knotd binds it.
	for attempt := 1; attempt <= 3; attempt++ {
		port := FreePort(t)
		conf := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(conf, []byte(knotConf(dir, port, zone, k.Secret)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(tools["knotc"], "-c", conf, "conf-check").CombinedOutput(); err != nil { //nolint:gosec // G204: knotc with our config
			t.Fatalf("internal/acmetest (knot): knotc conf-check: %v\n%s", err, out)
		}
		logs := &SyncBuffer{}
		cmd := exec.Command(tools["knotd"], "-c", conf) //nolint:gosec // G204: knotd with our config
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logs, logs
		DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("internal/acmetest (knot): start knotd: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		k.stop = func() {
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
		k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = k.waitSOA(exited); lastErr == nil {
			t.Cleanup(func() {
				k.stop()
				if t.Failed() {
					t.Logf("knotd log:\n%s", logs)
				}
			})
			return k
		}
		k.stop()
		t.Logf("knotd attempt %d on port %d: %v\n%s", attempt, port, lastErr, logs)
	}
	t.Fatalf("internal/acmetest (knot): knotd did not start: %v", lastErr)
	return nil
}

// Stop stops knotd now (SIGTERM, SIGKILL after 15 s), for tests of an
// upstream that has gone away. Its updates are lost.
func (k *Knot) Stop() { k.stop() }

// RandomTSIGSecret returns a new random 256-bit TSIG secret, base64.
func RandomTSIGSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TXT asks knotd directly (TCP, no recursion) for the TXT values at name
// and returns them sorted, each value's character-strings joined. A name
// without TXT (NODATA or NXDOMAIN) gives none; any other failure fails t.
func (k *Knot) TXT(t *testing.T, name string) []string {
	t.Helper()
	r, err := knotQuery(k.Addr, dns.Fqdn(name), dns.TypeTXT)
	if err != nil {
		t.Fatalf("internal/acmetest (knot): query %s TXT: %v", name, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		t.Fatalf("internal/acmetest (knot): query %s TXT: rcode %s", name, dns.RcodeToString[r.Rcode])
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

// knotConf is knotd's configuration: everything under dir, updates kept
// in memory only (no zone file sync, no journal), knotKeyName allowed to
// update zone.
func knotConf(dir string, port int, zone, secret string) string {
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
    file: "zone"
    acl: update
`, dir, port, knotKeyName, secret, zone)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// waitSOA polls knotd until it answers the zone's SOA authoritatively.
func (k *Knot) waitSOA(exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := knotQuery(k.Addr, k.Zone, dns.TypeSOA)
		if err == nil {
			if r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) == 1 {
				return nil
			}
			err = fmt.Errorf("rcode %s, aa %v, %d answers", dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
		}
		select {
		case <-exited:
			return errors.New("knotd exited")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SOA answer within 30s (last: %w)", err)
		}
	}
}

func knotQuery(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}
