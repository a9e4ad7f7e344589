package dnsserver

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// batchUDP: on Linux, UDP listen addresses with a specific IP are served
// by our recvmmsg/sendmmsg loops on SO_REUSEPORT sockets.
const batchUDP = true

// reusePort is a net.ListenConfig Control function setting SO_REUSEPORT,
// so several sockets can bind one address and the kernel spreads the
// packets over them. Only sockets of the same user can join the group.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// temporary reports UDP read errors to retry rather than stop on: an
// interrupted call, a peer's ICMP error surfacing on the socket, and
// memory pressure.
func temporary(err error) bool {
	for _, e := range []error{unix.EINTR, unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENOBUFS, unix.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
