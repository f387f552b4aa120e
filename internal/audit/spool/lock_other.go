//go:build !unix

package spool

import "os"

// lockDir opens path; outside Unix it takes no lock.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// unlockDir closes lockDir's file.
func unlockDir(f *os.File) error { return f.Close() }
