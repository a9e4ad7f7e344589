package legoworker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge"

	"github.com/acmehub/acmehub/internal/upstream"
)

// workerArg is the trailing argument that makes the test binary a worker:
// an argument rather than a variable, since a worker's environment holds
// only what the pool sets.
const workerArg = "lego-worker"

func TestMain(m *testing.M) {
	testProviders = map[string]func() (challenge.Provider, error){
		"envdump": func() (challenge.Provider, error) { return envDump{}, nil },
		"crash":   func() (challenge.Provider, error) { return crasher{}, nil },
		"chatty":  func() (challenge.Provider, error) { return chatty{}, nil },
	}
	if len(os.Args) > 1 && os.Args[len(os.Args)-1] == workerArg {
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

// envDump fails Present with the sorted environment names and the values
// of the pool's own variables, so a test sees the worker's environment.
type envDump struct{}

func (envDump) Present(_, _, _ string) error {
	var names []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	slices.Sort(names)
	return fmt.Errorf("names=%s provider=%s resolvers=%s nocname=%s", strings.Join(names, ","),
		os.Getenv(envProvider), os.Getenv(envResolvers), os.Getenv(envNoCNAME))
}
func (envDump) CleanUp(_, _, _ string) error { return nil }

// crasher exits in the middle of a call.
type crasher struct{}

func (crasher) Present(_, _, _ string) error { os.Exit(3); return nil }
func (crasher) CleanUp(_, _, _ string) error { return nil }

// chatty prints its credential to stdout and stderr the way a careless
// provider or SDK might, then succeeds. initStdout is stdout captured at
// init, as an SDK's default logger would hold it.
type chatty struct{}

var initStdout = os.Stdout

func (chatty) Present(_, _, _ string) error {
	fmt.Fprintln(initStdout, "stdout: token is", os.Getenv("CHATTY_TOKEN"))
	fmt.Fprintln(os.Stderr, "stderr: token is", os.Getenv("CHATTY_TOKEN"))
	return nil
}
func (chatty) CleanUp(_, _, _ string) error { return nil }

// newTestPool returns a pool whose workers are this test binary, closed
// (and checked to leave no process) when the test ends.
func newTestPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	cfg.Command = workerCommand(t)
	p := NewPool(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.running != 0 {
			t.Errorf("after close: %d processes not reaped", p.running)
		}
	})
	return p
}

// workerCommand is the argv that runs this test binary as a worker.
func workerCommand(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "-test.run=^$", workerArg}
}

func mustDriver(t *testing.T, p *Pool, key, provider string, fields map[string]string) upstream.KeyAuthDriver {
	t.Helper()
	d, err := p.Driver(key, provider, fields)
	if err != nil {
		t.Fatalf("driver %s: %v", key, err)
	}
	return d
}

// pidOf returns the PID of d's running worker, or 0.
func pidOf(d upstream.KeyAuthDriver) int {
	dr := d.(*driver)
	dr.p.mu.Lock()
	defer dr.p.mu.Unlock()
	if dr.w.proc == nil {
		return 0
	}
	return dr.w.proc.cmd.Process.Pid
}

// reaped reports whether pid is gone entirely: kill(pid, 0) still
// succeeds for a zombie, so ESRCH means the process was waited for.
func reaped(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// eventually polls cond; the bound is for liveness only, not speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is a concurrency-safe slog destination.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func debugLogger(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
