package vaulttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindBinary checks that the binary is looked up at the root of the
// Gatehouse module, not of a nested module such as test/tools/vault.
func TestFindBinary(t *testing.T) {
	root := t.TempDir()
	nested := filepath.Join(root, "test", "tools", "vault")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "go.mod"), "module "+rootModule+"\n\ngo 1.26\n")
	write(filepath.Join(nested, "go.mod"), "module "+rootModule+"/test/tools/vault\n")
	t.Chdir(nested)
	t.Setenv(EnvBin, "")

	if _, err := findBinary(); err == nil || !strings.Contains(err.Error(), "bin/vault missing: run `make vault`") {
		t.Fatalf("without bin/vault: err = %v", err)
	}
	bin := filepath.Join(root, "bin", "vault")
	write(bin, "")
	if got, err := findBinary(); err != nil || got != bin {
		t.Fatalf("findBinary() = %q, %v; want %q", got, err, bin)
	}

	t.Setenv(EnvBin, filepath.Join(root, "elsewhere"))
	if _, err := findBinary(); err == nil || !strings.Contains(err.Error(), EnvBin) {
		t.Fatalf("with a missing %s: err = %v", EnvBin, err)
	}
}
