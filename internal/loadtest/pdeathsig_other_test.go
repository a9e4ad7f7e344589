//go:build !linux

package loadtest

import "os/exec"

// dieWithParent is a no-op where the kernel offers no parent-death signal;
// the tests' cleanups still stop every process they start.
func dieWithParent(*exec.Cmd) {}
