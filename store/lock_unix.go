//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fileLock is an advisory flock on a side file (never on the database file
// itself: closing any descriptor of that file would drop SQLite's own POSIX
// locks). Open holds it shared, Restore exclusively, so a restore cannot
// replace a database that a running process has open.
type fileLock struct{ f *os.File }

func lockShared(path string) (*fileLock, error) { return lockFile(path, syscall.LOCK_SH) }

func lockExclusive(path string) (*fileLock, error) { return lockFile(path, syscall.LOCK_EX) }

func lockFile(path string, how int) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // path is the lock file next to the operator-configured database
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

// noLock stands in for the shared lock while this process holds the
// exclusive one.
func noLock() *fileLock { return &fileLock{} }

func (l *fileLock) unlock() error {
	if l.f == nil {
		return nil
	}
	// Closing the descriptor releases the flock.
	return l.f.Close()
}
