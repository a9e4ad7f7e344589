package acmetest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hubStartTimeout is how long StartHub waits for "api listening" unless
// HubConfig.StartTimeout says otherwise.
const hubStartTimeout = 20 * time.Second

// HubConfig configures StartHub.
type HubConfig struct {
	// Zone is the hub zone (--zone); "" means "acme.test.".
	Zone string
	// DataDir is --data-dir; "" means a new t.TempDir().
	DataDir string
	// Args are more `acmehub serve` flags, appended after the harness's
	// (a later flag wins; list flags such as --check-resolver add up, so
	// the harness leaves out its default of one that Args set).
	Args []string
	// StartTimeout bounds the wait for "api listening"; 0 means 20 s.
	StartTimeout time.Duration
}

// Hub is a running `acmehub serve` built from this checkout.
type Hub struct {
	// DNSAddr is the DNS server's host:port (UDP and TCP).
	DNSAddr string
	// APIURL is the HTTP API's base URL, "http://127.0.0.1:port".
	APIURL string
	// Token is the bootstrap admin token ("<client id>.<secret>").
	Token string
	// Zone and DataDir are what the hub was started with.
	Zone, DataDir string
	// Startup is the time from exec to reading the "api listening" line.
	Startup time.Duration

	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan error
}

// StartHub builds cmd/acmehub once per test process and runs
// `acmehub serve` on free 127.0.0.1 ports with an empty environment, waits
// until its DNS server and API say where they listen, and reads the
// bootstrap admin token. t.Cleanup kills it by PID if it still runs.
func StartHub(t *testing.T, cfg HubConfig) *Hub {
	t.Helper()
	if cfg.Zone == "" {
		cfg.Zone = "acme.test."
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = hubStartTimeout
	}
	args := []string{"serve", "--data-dir", cfg.DataDir, "--zone", cfg.Zone,
		"--dns-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
		"--log-level", "info", "--log-format", "json",
		// No background delegation checks: a test runs its own.
		"--check-interval", "0"}
	if !hasFlag(cfg.Args, "check-resolver") {
		// No test hub asks the system's resolver: port 1 on loopback is
		// privileged, so no test can listen there, and closed, so a query
		// fails at once (ICMP port unreachable).
		args = append(args, "--check-resolver", unansweredResolver)
	}
	args = append(args, cfg.Args...)
	cmd := exec.Command(binary(t, acmehubPackage), args...) //nolint:gosec // G204: our own build of acmehub with the test's arguments
	cmd.Env = []string{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	DieWithParent(cmd)
	h := &Hub{Zone: cfg.Zone, DataDir: cfg.DataDir, cmd: cmd, logs: &SyncBuffer{}, done: make(chan error, 1)}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("acmetest: start acmehub: %v", err)
	}
	up := make(chan hubUp, 1)
	go func() {
		// Wait only after the whole log is read: it closes the pipe.
		h.scanLog(stderr, up)
		h.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-h.done; t.Failed() {
			t.Logf("acmetest: acmehub exit: %v\n%s", err, h.logs)
		}
		h.done <- nil
	})
	select {
	case u := <-up:
		h.DNSAddr, h.APIURL, h.Startup = u.dns, "http://"+u.api, u.at.Sub(started)
	case err := <-h.done:
		h.done <- err
		t.Fatalf("acmetest: acmehub exited early: %v\n%s", err, h.logs)
	case <-time.After(timeout):
		t.Fatalf("acmetest: acmehub did not start within %v:\n%s", timeout, h.logs)
	}
	if h.DNSAddr == "" {
		t.Fatalf("acmetest: acmehub did not log a udp DNS address:\n%s", h.logs)
	}
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, "bootstrap-admin-token"))
	if err != nil {
		t.Fatalf("acmetest: acmehub bootstrap token: %v", err)
	}
	h.Token = strings.TrimSpace(string(tok))
	return h
}

// unansweredResolver is StartHub's default --check-resolver: a loopback
// address where nothing answers.
const unansweredResolver = "127.0.0.1:1"

// hasFlag reports whether args set the flag name (--name or -name, with
// its value apart or after "=").
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// hubUp is what scanLog reports once "api listening" is logged.
type hubUp struct {
	dns, api string    // the DNS (UDP) and API host:port
	at       time.Time // when the line was read
}

// scanLog copies the hub's JSON log lines into h.logs and reports the DNS
// (UDP) and API addresses once "api listening" is logged.
func (h *Hub) scanLog(r io.Reader, up chan<- hubUp) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var dnsAddr string
	for sc.Scan() {
		at := time.Now()
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
			select {
			case up <- hubUp{dns: dnsAddr, api: rec.Addr, at: at}:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// Logs returns the hub's log so far.
func (h *Hub) Logs() string { return h.logs.String() }

// PID is the hub's process id, for reading /proc/<pid>.
func (h *Hub) PID() int { return h.cmd.Process.Pid }

// Exited reports, without waiting, whether the hub has exited, and if so
// what Wait returned.
func (h *Hub) Exited() (bool, error) {
	select {
	case err := <-h.done:
		h.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and fails the test unless the hub exits cleanly
// within 15 s.
func (h *Hub) Stop(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("acmetest: stop acmehub: %v", err)
	}
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatalf("acmetest: acmehub exit after SIGTERM: %v\n%s", err, h.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("acmetest: acmehub did not exit within 15 s of SIGTERM:\n%s", h.logs)
	}
}
