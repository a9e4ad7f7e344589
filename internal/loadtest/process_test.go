package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acmehub/acmehub/internal/acmetest"
	"github.com/acmehub/acmehub/store"
)

// origin is the hub zone every load test serves.
const origin = "acme.test."

func TestMain(m *testing.M) { os.Exit(acmetest.RunTests(m)) }

// requireBench skips unless ACMEHUB_BENCH=1, and looks up the external
// tools the test needs: missing ones skip it, or fail it when
// ACMEHUB_TEST_REQUIRE_ALL=1.
func requireBench(t *testing.T, tools ...string) map[string]string {
	t.Helper()
	if os.Getenv("ACMEHUB_BENCH") != "1" {
		t.Skip("internal/loadtest: set ACMEHUB_BENCH=1 to run the load tests (make bench)")
	}
	paths := map[string]string{}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			// knotd lives in /usr/sbin, which a user's PATH may lack.
			if q := filepath.Join("/usr/sbin", tool); fileExists(q) {
				p, err = q, nil
			}
		}
		if err != nil {
			if os.Getenv("ACMEHUB_TEST_REQUIRE_ALL") == "1" {
				t.Fatalf("internal/loadtest: %s is not installed (ACMEHUB_TEST_REQUIRE_ALL=1)", tool)
			}
			t.Skipf("internal/loadtest: %s is not installed", tool)
		}
		paths[tool] = p
	}
	return paths
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// proc is a started server process other than the hub (knotd), with its
// stdout and stderr collected in logs.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logs    *acmetest.SyncBuffer
	exited  chan struct{} // closed once Wait returned
	waitErr error
}

// startProc starts cmd and registers a cleanup that stops it by PID.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, logs: &acmetest.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	acmetest.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { p.stop(t) })
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the exit; after 15 s it kills. It is
// safe to call more than once.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("%s (pid %d) did not stop within 15s of SIGTERM; killing it", p.name, p.pid())
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startHub runs `acmehub serve` (built once per run by acmetest, as `make
// build` does) on dataDir with free loopback ports and waits up to 2
// minutes until it logs "api listening"; h.Startup is the time from exec
// to that line.
func startHub(t *testing.T, dataDir string) *acmetest.Hub {
	t.Helper()
	return acmetest.StartHub(t, acmetest.HubConfig{Zone: origin, DataDir: dataDir, StartTimeout: 2 * time.Minute})
}

// benchName is the i-th challenge name: one label shaped like the account
// ids the hub hands out.
func benchName(i int) string {
	return fmt.Sprintf("%08x-1b2c-4d5e-8f90-%012x.%s", i, uint64(i)*2654435761%(1<<48), origin)
}

// missingName is a name in the zone that holds nothing (NXDOMAIN).
func missingName(i int) string {
	return fmt.Sprintf("missing-%08x.%s", i, origin)
}

// benchValue is a TXT value shaped like an ACME DNS-01 digest (43 bytes of
// base64url).
func benchValue(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// populate adds one value to each of n names (benchName(0..n-1)) directly
// in the database at dir/acmehub.db, from 64 goroutines so the store
// batches them.
func populate(t *testing.T, dir string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "acmehub.db"), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 64
	expires := time.Now().Add(24 * time.Hour)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				_, err := db.AddValue(ctx, store.AddRequest{
					Name: benchName(i), Value: benchValue(i), TTL: 60,
					ExpiresAt: expires, CreatedBy: "bench",
				})
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	err = errors.Join(<-errs, db.Close())
	if err != nil {
		t.Fatalf("populate %d names: %v", n, err)
	}
}

// procStatus reads fields such as VmHWM and VmRSS (in bytes) from
// /proc/<pid>/status.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[key] = v << 10
		}
	}
	if out["VmHWM"] == 0 {
		return nil, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return out, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTime is the user plus system CPU time all threads of pid have used
// so far, from /proc/<pid>/stat (in USER_HZ ticks, 100 per second on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// loadAvg is the 1-minute load average, to show in reports how busy the
// machine was with other work.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
