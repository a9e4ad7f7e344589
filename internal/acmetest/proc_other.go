//go:build !linux

package acmetest

import "os/exec"

// dieWithParent does nothing here: only Linux has a parent-death signal,
// so elsewhere a test process killed before its cleanups leaves children.
func dieWithParent(*exec.Cmd) {}
