package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
)

// TestEveryCommandHelp: `gatehouse COMMAND -h` (and --help) prints the
// command's usage and exits 0, as the top-level help promises; approvals,
// audit and hash-key took -h for a subcommand or a key. Some commands'
// flag sets print to the process's stderr, so it is captured too.
func TestEveryCommandHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "apply", "approvals", "audit", "worker", "export", "check", "keygen", "bundle", "health", "hash-key"} {
		for _, h := range []string{"-h", "--help"} {
			var stdout, stderr bytes.Buffer
			var code int
			osErr := captureStderr(t, func() { code = Main(context.Background(), []string{cmd, h}, &stdout, &stderr) })
			out := stdout.String() + stderr.String() + osErr
			if code != 0 || !strings.Contains(strings.ToLower(out), "usage") {
				t.Errorf("gatehouse %s %s: exit %d, output %q; want 0 and its usage", cmd, h, code, out)
			}
		}
	}
}

func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	f()
	os.Stderr = saved
	w.Close()
	return <-done
}

// TestUnknownFlag: a flag a command does not have exits 2 (a usage
// error, as a missing required flag does) and is reported once.
func TestUnknownFlag(t *testing.T) {
	for _, cmd := range [][]string{{"serve", "--bogus"}, {"apply", "--bogus"}, {"audit", "verify", "--bogus"}, {"approvals", "list", "--bogus"}, {"keygen", "--bogus"}} {
		var stdout, stderr bytes.Buffer
		var code int
		osErr := captureStderr(t, func() { code = Main(context.Background(), cmd, &stdout, &stderr) })
		out := stderr.String() + osErr
		if code != 2 || strings.Count(out, "flag provided but not defined: -bogus") != 1 {
			t.Errorf("gatehouse %s: exit %d, output %q; want 2 and the error once", strings.Join(cmd, " "), code, out)
		}
	}
}
