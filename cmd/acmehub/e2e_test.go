package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/acmetest"
)

func TestMain(m *testing.M) { os.Exit(acmetest.RunTests(m)) }

func request(t *testing.T, h *acmetest.Hub, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.APIURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func txtValues(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	r, _, err := new(dns.Client).Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
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

func soaSerial(t *testing.T, server string) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(defaultZone, dns.TypeSOA)
	r, _, err := new(dns.Client).Exchange(m, server)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("SOA query: %v %v", r, err)
	}
	return r.Answer[0].(*dns.SOA).Serial
}

func TestServeEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	hub := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: dataDir})
	token := hub.Token
	if st, err := os.Stat(filepath.Join(dataDir, "bootstrap-admin-token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap token file: %v %v", st, err)
	}
	if logs := hub.Logs(); strings.Contains(logs, strings.SplitN(token, ".", 2)[1]) {
		t.Fatal("the bootstrap token's secret appears in the logs")
	}
	const name = "abc123._acme." + defaultZone

	// Two values at one name, both answered at once.
	for _, v := range []string{"value-one", "value-two"} {
		if code, body := request(t, hub, token, "POST", "/api/v1/records/"+name, map[string]any{"value": v}); code != http.StatusCreated {
			t.Fatalf("add %s: %d %s", v, code, body)
		}
	}
	if got := txtValues(t, hub.DNSAddr, name); !slices.Equal(got, []string{"value-one", "value-two"}) {
		t.Fatalf("after two adds: %q", got)
	}
	// Remove one, one left.
	if code, body := request(t, hub, token, "DELETE", "/api/v1/records/"+name+"?value=value-one", nil); code != http.StatusOK {
		t.Fatalf("remove: %d %s", code, body)
	}
	if got := txtValues(t, hub.DNSAddr, name); !slices.Equal(got, []string{"value-two"}) {
		t.Fatalf("after remove: %q", got)
	}
	// Metrics count the queries just made and show the view.
	resp, err := http.Get(hub.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{`acmehub_dns_queries_total{qtype="TXT",rcode="NOERROR"} 2`,
		"acmehub_dns_answer_duration_seconds_bucket", "acmehub_zone_names 1",
		fmt.Sprintf("acmehub_zone_serial %d\n", soaSerial(t, hub.DNSAddr))} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Without a valid token: 401.
	if code, _ := request(t, hub, "ahc_x.ahs_y", "GET", "/api/v1/records", nil); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}

	// A second process on the same database: its write reaches the first
	// process's DNS answers through the journal within about a second.
	second := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: dataDir})
	const other = "other._acme." + defaultZone
	if code, body := request(t, second, token, "POST", "/api/v1/records/"+other, map[string]any{"value": "from-second"}); code != http.StatusCreated {
		t.Fatalf("add via second: %d %s", code, body)
	}
	start := time.Now()
	for !slices.Equal(txtValues(t, hub.DNSAddr, other), []string{"from-second"}) {
		if time.Since(start) > 2*time.Second {
			t.Fatal("the first process never saw the second's write")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("second process's write visible after %v", time.Since(start))

	// SIGTERM: both exit 0 after closing the database.
	for _, h := range []*acmetest.Hub{second, hub} {
		h.Stop(t)
		if !strings.Contains(h.Logs(), "database closed") {
			t.Errorf("no clean database close in the log:\n%s", h.Logs())
		}
	}
}

func TestServeRejectsBadSettings(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, acmetest.Binary(t), "serve", "--data-dir", dataDir,
		"--zone", "bad..zone", "--dns-listen", "nonsense", "--soa-minimum", "forever", "--db-synchronous", "OFF")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("want a non-zero exit, got %v\n%s", err, out)
	}
	for _, want := range []string{"zone:", "dns-listen:", "soa-minimum:", "db-synchronous:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory was created despite invalid settings")
	}
}

// TestBackupRestoreCLI: an online backup of a running hub, more writes, then
// a restore: the backup's values are back and the serial moved forward past
// everything the hub had published.
func TestBackupRestoreCLI(t *testing.T) {
	dataDir := t.TempDir()
	hub := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: dataDir})
	token := hub.Token
	if code, body := request(t, hub, token, "POST", "/api/v1/records/kept", map[string]any{"value": "in-backup"}); code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, body)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	out, err := exec.Command(acmetest.Binary(t), "backup", "--data-dir", dataDir, backup).CombinedOutput()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	for i := range 5 {
		if code, body := request(t, hub, token, "POST", "/api/v1/records/later", map[string]any{"value": fmt.Sprint("after-", i)}); code != http.StatusCreated {
			t.Fatalf("add: %d %s", code, body)
		}
	}
	published := soaSerial(t, hub.DNSAddr)
	hub.Stop(t)

	out, err = exec.Command(acmetest.Binary(t), "restore", "--data-dir", dataDir, "--from", backup).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	restarted := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: dataDir})
	if got := txtValues(t, restarted.DNSAddr, "kept."+defaultZone); !slices.Equal(got, []string{"in-backup"}) {
		t.Fatalf("restored value: %q", got)
	}
	if got := txtValues(t, restarted.DNSAddr, "later."+defaultZone); len(got) != 0 {
		t.Fatalf("values written after the backup came back: %q", got)
	}
	if now := soaSerial(t, restarted.DNSAddr); int32(now-published) <= 0 {
		t.Fatalf("serial after restore %d is not newer than the published %d (RFC 1982)", now, published)
	}
	// The restored database still belongs to its key file: the old token works.
	if code, body := request(t, restarted, token, "GET", "/api/v1/records", nil); code != http.StatusOK {
		t.Fatalf("token after restore: %d %s", code, body)
	}
	restarted.Stop(t)
}

// TestServeTLS: with a certificate and key the API speaks only HTTPS.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	pool := writeSelfSigned(t, certFile, keyFile)
	hub := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone, DataDir: filepath.Join(dir, "data"),
		Args: []string{"--api-tls-cert", certFile, "--api-tls-key", keyFile}})
	url := strings.Replace(hub.APIURL, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https status %d", resp.StatusCode)
	}
	if resp, err := http.Get(hub.APIURL + "/healthz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP is answered on a TLS listener")
		}
	}
	hub.Stop(t)
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	certPEM, keyPEM, pool, err := acmetest.SelfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return pool
}

// TestDelegationLabelIsNoData: a delegation's label exists in the zone even
// with no values (checklist A.3): after a present and its clean-up, the
// label answers NODATA with the SOA, never NXDOMAIN, which resolvers would
// cache against the next attempt.
func TestDelegationLabelIsNoData(t *testing.T) {
	hub := acmetest.StartHub(t, acmetest.HubConfig{Zone: defaultZone})
	tok := hub.Consumer(t, "shop", "*.example.org")
	present := func(method, path, body string) map[string]any {
		req, err := http.NewRequestWithContext(t.Context(), method, hub.APIURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.String())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v %v", method, path, resp.StatusCode, out, err)
		}
		return out
	}
	ch := present("POST", "/api/v1/challenges", `{"identifier":"www.example.org","value":"v1"}`)
	target := ch["cname_target"].(string)
	if got := txtValues(t, hub.DNSAddr, target); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("value not served at %s: %q", target, got)
	}
	present("POST", "/api/v1/challenges/cleanup", `{"identifier":"www.example.org","value":"v1"}`)
	for _, qtype := range []uint16{dns.TypeTXT, dns.TypeA, dns.TypeCAA} {
		m := new(dns.Msg)
		m.SetQuestion(target, qtype)
		r, _, err := new(dns.Client).Exchange(m, hub.DNSAddr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || !r.Authoritative {
			t.Fatalf("%s at the empty label: want NODATA with the SOA, got %v", dns.TypeToString[qtype], r)
		}
	}
}
