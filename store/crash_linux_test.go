//go:build linux

package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSIGKILLKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crash.db")
	// Acknowledged state: name+" "+value -> present; absent from the map
	// (never acknowledged, or a removal in flight) may be either way.
	present := map[string]bool{}
	rounds, totalAdds := 0, 0
	start := time.Now()
	for round := 1; round <= 8 && time.Since(start) < 12*time.Second; round++ {
		rounds++
		acked := runAndKill(t, path, round)
		for _, l := range acked {
			op, key, _ := strings.Cut(l, " ")
			switch op {
			case "add":
				present[key] = true
				totalAdds++
			case "try-del":
				delete(present, key)
			case "del":
				present[key] = false
			default:
				t.Fatalf("child printed %q", l)
			}
		}
		db, err := Open(t.Context(), Config{Path: path, Synchronous: "FULL"})
		if err != nil {
			t.Fatalf("round %d: open after SIGKILL: %v", round, err)
		}
		mustIntegrity(t, db)
		recs, err := db.ListAll(t.Context(), "", 10_000)
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for _, r := range recs {
			stored[r.Name+" "+r.Value] = true
		}
		for key, want := range present {
			if stored[key] != want {
				t.Errorf("round %d: %s stored=%v, acknowledged state %v", round, key, stored[key], want)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
	if totalAdds == 0 {
		t.Fatal("the child acknowledged no write")
	}
	t.Logf("%d rounds, %d acknowledged adds, all present", rounds, totalAdds)
}

// runAndKill runs the child on path, kills it with SIGKILL at a random
// moment after its first acknowledged write, and returns the complete lines
// it printed.
func runAndKill(t *testing.T, path string, round int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ACMEHUB_STORE_CHILD=1", "ACMEHUB_STORE_PATH="+path, fmt.Sprintf("ACMEHUB_STORE_ROUND=%d", round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The child dies with this test process, should the test panic.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string)
	first := make(chan struct{})
	go func() {
		var got []string
		r := bufio.NewReader(stdout)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				// An unterminated tail was cut by the kill: not acknowledged.
				if !errors.Is(err, io.EOF) {
					t.Error(err)
				}
				lines <- got
				return
			}
			if len(got) == 0 {
				close(first)
			}
			got = append(got, strings.TrimSuffix(l, "\n"))
		}
	}()
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("child wrote nothing: %s", stderr.String())
	}
	time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := <-lines
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL: %s", err, stderr.String())
	}
	return got
}
