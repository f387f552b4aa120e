// Package chdbtest opens the embedded ClickHouse engine for tests.
//
// Tests never skip when the library is missing: they fail and say to run
// `make chdb`. The library is found through $GATEHOUSE_CHDB_LIB, else at
// chdb.DevLibPath under the repository root (the directory with go.mod,
// found walking up from the test's directory).
package chdbtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb"
)

// LibPath is the library tests load, or "" (after failing t) when it is
// not installed.
func LibPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(chdb.EnvLib); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", chdb.EnvLib, p, err)
		}
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, chdb.DevLibPath)
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("the embedded ClickHouse engine is not installed (%s): run make chdb", p)
			}
			return p
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no go.mod above %s to find %s under: run make chdb, or set %s", wd, chdb.DevLibPath, chdb.EnvLib)
			return ""
		}
	}
}

// Open opens the engine on dir, or on a new temporary directory when dir
// is "", and closes it when the test ends.
func Open(t testing.TB, dir string) *chdb.Backend {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := chdb.Open(context.Background(), chdb.Options{LibPath: LibPath(t), DataDir: dir})
	if errors.Is(err, chdb.ErrNotBuilt) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing %s: %v", b.Name(), err)
		}
	})
	return b
}
