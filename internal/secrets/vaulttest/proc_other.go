//go:build !linux

package vaulttest

import "os/exec"

// setProcAttr does nothing where the kernel cannot tie Vault's life to the
// test process's; the test's cleanup still stops it.
func setProcAttr(*exec.Cmd) {}
