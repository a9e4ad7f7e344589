//go:build !unix

package store

// fileLock is a no-op where flock is unavailable: Restore then relies on the
// operator having stopped the server.
type fileLock struct{}

func lockShared(string) (*fileLock, error) { return &fileLock{}, nil }

func lockExclusive(string) (*fileLock, error) { return &fileLock{}, nil }

func noLock() *fileLock { return &fileLock{} }

func (*fileLock) unlock() error { return nil }
