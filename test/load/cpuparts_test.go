package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

func TestCPUPart(t *testing.T) {
	const (
		gw   = "github.com/gatehouse-dev/gatehouse/"
		sdk  = "github.com/modelcontextprotocol/go-sdk/"
		call = gw + "proxy.(*face).callTool"
	)
	for _, tc := range []struct {
		want   string
		frames []string // leaf first
	}{
		// The upstream call's write, under the agent's request: the
		// upstream leg's, though the agent's server is on the stack too.
		{"upstream leg: sockets", []string{"internal/runtime/syscall.Syscall6", "syscall.write", "internal/poll.(*FD).Write",
			gw + "internal/h2cork.(*Conn).Write", "net/http.(*http2ClientConn).writeHeaders", "net/http.(*http2Transport).RoundTrip",
			sdk + "mcp.(*streamableClientConn).Write", sdk + "mcp.(*ClientSession).CallTool", call, "net/http.(*conn).serve"}},
		{"upstream leg: go-sdk", []string{"runtime.mallocgc", "encoding/json.Marshal", sdk + "mcp.(*ClientSession).CallTool", call}},
		{"upstream leg: net/http", []string{"runtime.mapassign", "net/http.(*http2clientConnReadLoop).run"}},
		{"agent leg: go-sdk", []string{"github.com/segmentio/encoding/json.Parse", sdk + "mcp.(*streamableServerConn).servePOST", "net/http.(*conn).serve"}},
		{"agent leg: net/http", []string{"bufio.(*Reader).ReadLine", "net/http.readRequest", "net/http.(*conn).serve"}},
		{"agent leg: sockets", []string{"syscall.read", "internal/poll.(*FD).Read", "net.(*conn).Read", "net/http.(*connReader).backgroundRead"}},
		// CEL and regexp work is charged to the gateway's package above it.
		{"gateway: policy (CEL included)", []string{"github.com/google/cel-go/interpreter.(*evalOr).Eval", gw + "internal/policy.(*program).eval", call}},
		{"gateway: guardrails", []string{"regexp.(*Regexp).doExecute", gw + "internal/guard.(*Set).Check", call}},
		{"gateway: proxy", []string{"log/slog.(*Logger).LogAttrs", gw + "proxy.(*Gateway).logRequest"}},
		// A system call outside the legs is its caller's.
		{"gateway: audit (spool, shipper)", []string{"syscall.pwrite", "internal/poll.(*FD).Pwrite", "os.(*File).WriteAt", gw + "internal/audit/spool.(*Spool).writeChunk"}},
		{"native code (the audit engine: its own count is the \"audit engine\" line)", []string{"github.com/ebitengine/purego.syscall_SyscallN", gw + "internal/audit/chdb.(*insertStream).append"}},
		{"native code (the audit engine: its own count is the \"audit engine\" line)", []string{"[libchdb.so]", "runtime._ExternalCode"}},
		{"agent leg: net/http", []string{"memeqbody", "net/http/internal/httpcommon.CanonicalHeader", "net/http.(*conn).serve"}},
		{"runtime: scheduler, collector, idle", []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}},
		{"other: sockets", []string{"syscall.write", "internal/poll.(*FD).Write", "os.(*File).Write"}[:2]},
		{"other: main.spin", []string{"main.spin", "main.main"}},
	} {
		if got := cpuPart(tc.frames); got != tc.want {
			t.Errorf("cpuPart(%q) = %q, want %q", tc.frames, got, tc.want)
		}
	}
}

// TestReadCPUParts profiles known work and checks that the parts add up
// and name it.
func TestReadCPUParts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Skipf("CPU profiling unavailable: %v", err)
	}
	burnForParts(300 * time.Millisecond)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := readCPUParts(path)
	if err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, d := range c.parts {
		sum += d
	}
	if c.total == 0 || sum != c.total {
		t.Fatalf("parts sum to %v, total %v", sum, c.total)
	}
	burnt := c.parts["other: github.com/gatehouse-dev/gatehouse/test/load.burnForParts"]
	if burnt < c.total/2 {
		t.Errorf("burnForParts has %v of %v: %v", burnt, c.total, c.parts)
	}
	var out strings.Builder
	c.print(&out, 1000)
	if !strings.Contains(out.String(), "burnForParts") || !strings.Contains(out.String(), "µs per call") {
		t.Errorf("print:\n%s", out.String())
	}
	if _, err := readCPUParts(filepath.Join(t.TempDir(), "missing.pprof")); err == nil {
		t.Error("a missing profile read without error")
	}
}

// burnForParts hashes for d: work whose samples land in its own frame
// (crypto/sha256 is one of the helpers skipped).
func burnForParts(d time.Duration) {
	var sum [32]byte
	for end := time.Now().Add(d); time.Now().Before(end); {
		sum = sha256.Sum256(sum[:])
	}
}
