//go:build !linux

package acmetest

import "os/exec"

// DieWithParent does nothing here: only Linux has a parent-death signal,
// so elsewhere a test process killed before its cleanups leaves children.
func DieWithParent(*exec.Cmd) {}
