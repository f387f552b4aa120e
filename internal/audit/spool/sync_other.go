//go:build !linux

package spool

import "os"

// fdatasync flushes f; outside Linux it is a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }
