package acmetest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The module paths of the binaries the harness builds. pebble's version is
// the one go.mod pins with its tool directive.
const (
	pebblePackage  = "github.com/letsencrypt/pebble/v2/cmd/pebble"
	acmehubPackage = "github.com/acmehub/acmehub/cmd/acmehub"
)

// binaries are built once per test process into one temporary directory,
// which RunTests removes.
var (
	binMu   sync.Mutex
	binDir  string
	builds  = map[string]*build{}
	binDirs []string // every directory made, for RunTests
)

type build struct {
	once sync.Once
	path string
	err  error
}

// RunTests runs m and removes the binaries built during the run. Call it
// from TestMain in packages that use StartPebble or StartHub:
//
//	func TestMain(m *testing.M) { os.Exit(acmetest.RunTests(m)) }
//
// Without it the binaries stay in the system's temporary directory.
func RunTests(m *testing.M) int {
	code := m.Run()
	binMu.Lock()
	defer binMu.Unlock()
	for _, d := range binDirs {
		_ = os.RemoveAll(d)
	}
	binDirs, binDir = nil, ""
	return code
}

// Binary returns the path of the acmehub binary built from this checkout
// (once per test process), for tests that run its other commands.
func Binary(t *testing.T) string {
	t.Helper()
	return binary(t, acmehubPackage)
}

// binary builds pkg with `go build` once per process and returns its path.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	b := builds[pkg]
	if b == nil {
		b = &build{}
		builds[pkg] = b
	}
	binMu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(pkg) })
	if b.err != nil {
		t.Fatalf("acmetest: %v", b.err)
	}
	return b.path
}

func goBuild(pkg string) (string, error) {
	binMu.Lock()
	if binDir == "" {
		d, err := os.MkdirTemp("", "acmetest-bin-")
		if err != nil {
			binMu.Unlock()
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
		binDir = d
		binDirs = append(binDirs, d)
	}
	dir := binDir
	binMu.Unlock()
	out := filepath.Join(dir, filepath.Base(pkg))
	// Built as `make build` builds acmehub: without cgo, paths trimmed.
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg) //nolint:gosec // G204: pkg is one of this package's constants
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	if _, err := os.Stat(out); err != nil {
		return "", errors.Join(fmt.Errorf("go build %s: no binary", pkg), err)
	}
	return out, nil
}
