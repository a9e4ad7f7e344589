package main

import (
	"bufio"
	"bytes"
	"context"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	buildOnce sync.Once
	binDir    string // made by TestMain, removed after the run
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acmehub-e2e-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// acmehubBinary builds the real binary once per test run.
func acmehubBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "acmehub")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build acmehub: %v", buildErr)
	}
	return binPath
}

// hubProcess is a running `acmehub serve`.
type hubProcess struct {
	cmd     *exec.Cmd
	dnsAddr string
	apiURL  string
	logs    *syncBuffer
	done    chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHub runs the binary on free loopback ports and waits until both
// front ends have said where they listen.
func startHub(t *testing.T, dataDir string, extra ...string) *hubProcess {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir,
		"--dns-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--log-level", "info"}, extra...)
	cmd := exec.Command(acmehubBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &hubProcess{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var dnsAddr, apiAddr string
		for sc.Scan() {
			line := sc.Text()
			_, _ = h.logs.Write([]byte(line + "\n"))
			var rec struct {
				Msg   string   `json:"msg"`
				Addr  string   `json:"addr"`
				Addrs []string `json:"addrs"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			switch rec.Msg {
			case "dns server listening":
				for _, a := range rec.Addrs {
					if udp, ok := strings.CutPrefix(a, "udp/"); ok && dnsAddr == "" {
						dnsAddr = udp
					}
				}
			case "api listening":
				apiAddr = rec.Addr
				addrs <- [2]string{dnsAddr, apiAddr}
			}
		}
	}()
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-h.done; t.Failed() {
			t.Logf("acmehub exit: %v\n%s", err, h.logs)
		}
	})
	select {
	case a := <-addrs:
		h.dnsAddr, h.apiURL = a[0], "http://"+a[1]
	case err := <-h.done:
		t.Fatalf("acmehub exited early: %v\n%s", err, h.logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("acmehub did not start in time:\n%s", h.logs)
	}
	return h
}

func (h *hubProcess) request(t *testing.T, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.apiURL+path, rd)
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

func readToken(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "bootstrap-admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dataDir, "bootstrap-admin-token"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("bootstrap token file mode %v, want 0600", st.Mode().Perm())
	}
	return strings.TrimSpace(string(b))
}

func TestServeEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	hub := startHub(t, dataDir)
	token := readToken(t, dataDir)
	if strings.Contains(hub.logs.String(), token) || strings.Contains(hub.logs.String(), strings.SplitN(token, ".", 2)[1]) {
		t.Fatal("the bootstrap token appears in the logs")
	}
	const name = "abc123._acme." + defaultZone

	// Two values at one name, both answered at once.
	for _, v := range []string{"value-one", "value-two"} {
		if code, body := hub.request(t, token, "POST", "/api/v1/records/"+name, map[string]any{"value": v}); code != http.StatusCreated {
			t.Fatalf("add %s: %d %s", v, code, body)
		}
	}
	if got := txtValues(t, hub.dnsAddr, name); !slices.Equal(got, []string{"value-one", "value-two"}) {
		t.Fatalf("after two adds: %q", got)
	}
	// Remove one, one left.
	if code, body := hub.request(t, token, "DELETE", "/api/v1/records/"+name+"?value=value-one", nil); code != http.StatusOK {
		t.Fatalf("remove: %d %s", code, body)
	}
	if got := txtValues(t, hub.dnsAddr, name); !slices.Equal(got, []string{"value-two"}) {
		t.Fatalf("after remove: %q", got)
	}
	// Metrics count the queries just made and show the view.
	resp, err := http.Get(hub.apiURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{`acmehub_dns_queries_total{qtype="TXT",rcode="NOERROR"} 2`,
		"acmehub_dns_answer_duration_seconds_bucket", "acmehub_zone_names 1",
		fmt.Sprintf("acmehub_zone_serial %d\n", soaSerial(t, hub.dnsAddr))} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Without a token: 401.
	if code, _ := hub.request(t, "ahc_x.ahs_y", "GET", "/api/v1/records", nil); code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", code)
	}

	// A second process on the same database: its write reaches the first
	// process's DNS answers through the journal within about a second.
	second := startHub(t, dataDir)
	const other = "other._acme." + defaultZone
	if code, body := second.request(t, token, "POST", "/api/v1/records/"+other, map[string]any{"value": "from-second"}); code != http.StatusCreated {
		t.Fatalf("add via second: %d %s", code, body)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !slices.Equal(txtValues(t, hub.dnsAddr, other), []string{"from-second"}) {
		if time.Now().After(deadline) {
			t.Fatal("the first process never saw the second's write")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("second process's write visible after %v", 2*time.Second-time.Until(deadline))

	// SIGTERM: both exit 0 after closing the database.
	for _, h := range []*hubProcess{second, hub} {
		if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-h.done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, h.logs)
			}
			h.done <- nil // for the cleanup
		case <-time.After(15 * time.Second):
			t.Fatal("no exit after SIGTERM")
		}
		if !strings.Contains(h.logs.String(), "database closed") {
			t.Errorf("no clean database close in the log:\n%s", h.logs)
		}
	}
}

func TestServeRejectsBadSettings(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, acmehubBinary(t), "serve", "--data-dir", dataDir,
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

func stopHub(t *testing.T, h *hubProcess) {
	t.Helper()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		h.done <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// TestBackupRestoreCLI: an online backup of a running hub, more writes, then
// a restore: the backup's values are back and the serial moved forward past
// everything the hub had published.
func TestBackupRestoreCLI(t *testing.T) {
	dataDir := t.TempDir()
	hub := startHub(t, dataDir)
	token := readToken(t, dataDir)
	if code, body := hub.request(t, token, "POST", "/api/v1/records/kept", map[string]any{"value": "in-backup"}); code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, body)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	out, err := exec.Command(acmehubBinary(t), "backup", "--data-dir", dataDir, backup).CombinedOutput()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	for i := range 5 {
		if code, body := hub.request(t, token, "POST", "/api/v1/records/later", map[string]any{"value": "after-" + string(rune('a'+i))}); code != http.StatusCreated {
			t.Fatalf("add: %d %s", code, body)
		}
	}
	published := soaSerial(t, hub.dnsAddr)
	stopHub(t, hub)

	out, err = exec.Command(acmehubBinary(t), "restore", "--data-dir", dataDir, "--from", backup).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	restarted := startHub(t, dataDir)
	if got := txtValues(t, restarted.dnsAddr, "kept."+defaultZone); !slices.Equal(got, []string{"in-backup"}) {
		t.Fatalf("restored value: %q", got)
	}
	if got := txtValues(t, restarted.dnsAddr, "later."+defaultZone); len(got) != 0 {
		t.Fatalf("values written after the backup came back: %q", got)
	}
	if now := soaSerial(t, restarted.dnsAddr); int32(now-published) <= 0 {
		t.Fatalf("serial after restore %d is not newer than the published %d (RFC 1982)", now, published)
	}
	// The restored database still belongs to its key file: the old token works.
	if code, body := restarted.request(t, token, "GET", "/api/v1/records", nil); code != http.StatusOK {
		t.Fatalf("token after restore: %d %s", code, body)
	}
	stopHub(t, restarted)
}
