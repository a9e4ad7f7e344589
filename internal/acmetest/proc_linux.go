package acmetest

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel kill cmd if the test process dies without
// running its cleanups (a -timeout panic, a SIGKILL). Call it before
// cmd.Start; it replaces cmd.SysProcAttr.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
