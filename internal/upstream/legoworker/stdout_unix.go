//go:build unix

package legoworker

import (
	"os"

	"golang.org/x/sys/unix"
)

// protocolOut returns a private copy of stdout for the protocol and points
// file descriptor 1 at stderr, so that whatever else writes to stdout (an
// SDK logger that captured os.Stdout at init included) lands in the log
// instead of corrupting the protocol.
func protocolOut() (*os.File, error) {
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	if err := unix.Dup2(2, 1); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "protocol"), nil
}
