package vaulttest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill Vault if the test process dies without
// running its cleanups (a panic, a timeout, kill -9), so no dev server
// outlives its test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
