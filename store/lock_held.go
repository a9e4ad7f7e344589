package store

import (
	"fmt"
	"path/filepath"
	"sync"
)

// heldExclusive records the lock files this process holds exclusively (by
// absolute path): Open in the same process then skips its shared lock,
// which flock would refuse against our own exclusive one.
var heldExclusive = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

// ExclusiveLock is the database's side lock held exclusively: no other
// process (a running serve, another CLI) has the database open while it
// is held. This process may still Open the database.
type ExclusiveLock struct {
	key  string
	lock *fileLock
}

// LockExclusive takes the exclusive lock of the database at dbPath without
// waiting; it fails with ErrLocked while another process has the database
// open. Unlock releases it; close every DB opened under it first.
func LockExclusive(dbPath string) (*ExclusiveLock, error) {
	key, err := filepath.Abs(dbPath + ".lock")
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", dbPath, err)
	}
	heldExclusive.Lock()
	defer heldExclusive.Unlock()
	if heldExclusive.paths[key] {
		return nil, fmt.Errorf("store: lock %s: %w", dbPath, ErrLocked)
	}
	l, err := lockExclusive(key)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	heldExclusive.paths[key] = true
	return &ExclusiveLock{key: key, lock: l}, nil
}

// Unlock releases the lock.
func (l *ExclusiveLock) Unlock() error {
	heldExclusive.Lock()
	defer heldExclusive.Unlock()
	delete(heldExclusive.paths, l.key)
	return l.lock.unlock()
}

// openLock takes Open's shared lock, or none when this process holds the
// exclusive one.
func openLock(dbPath string) (*fileLock, error) {
	if key, err := filepath.Abs(dbPath + ".lock"); err == nil {
		heldExclusive.Lock()
		held := heldExclusive.paths[key]
		heldExclusive.Unlock()
		if held {
			return noLock(), nil
		}
	}
	return lockShared(dbPath + ".lock")
}
