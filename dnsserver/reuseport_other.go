//go:build !linux

package dnsserver

import "syscall"

// batchUDP: elsewhere every UDP socket is served by miekg/dns's loop (the
// batch calls read one packet per system call outside Linux).
const batchUDP = false

func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

func temporary(error) bool { return false }
