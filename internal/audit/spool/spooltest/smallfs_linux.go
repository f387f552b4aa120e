// Package spooltest gives tests of the audit spool a disk that fills up.
package spooltest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallFS mounts a tmpfs of size bytes on a new temporary directory for
// the test's length and returns the directory: see Mount.
func SmallFS(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	Mount(t, dir, size)
	return dir
}

// Mount mounts a tmpfs of size bytes on dir (which must exist) until the
// test ends: writes past size fail with ENOSPC, as on a full disk. It
// needs root (CAP_SYS_ADMIN); without it the test is skipped, saying why.
func Mount(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("mounting a tmpfs of %d bytes for a disk that fills up: %v (needs root)", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// Fill writes a file at path that takes all the room left on its file
// system but leave bytes, until the test removes it (as an administrator
// frees space).
func Fill(t testing.TB, path string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*int64(st.Bsize) - leave
	if err := os.WriteFile(path, make([]byte, max(n, 0)), 0o600); err != nil {
		t.Fatalf("filling %s: %v", path, err)
	}
}
