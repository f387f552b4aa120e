//go:build !linux

package spool

import (
	"math"
	"os"
)

// fdatasync flushes f; outside Linux it is a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }

// freeBytes is statfs's room left on Linux; elsewhere it is not asked
// (the next write finds out).
func freeBytes(string) (int64, error) { return math.MaxInt64, nil }
