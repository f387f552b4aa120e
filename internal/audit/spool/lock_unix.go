//go:build unix

package spool

import (
	"os"
	"syscall"
)

// lockDir opens path and takes an exclusive, non-blocking flock on it.
// The kernel releases it when the process dies.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, nil
}

// unlockDir releases lockDir's lock. It unlocks before closing: a child
// forked but not yet exec'd (os/exec, elsewhere in the process) holds a
// copy of the descriptor, and closing ours alone would leave the lock
// held until the child execs.
func unlockDir(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
