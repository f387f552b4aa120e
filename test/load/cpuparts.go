package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// cpuParts is a CPU profile of the gateway charged to the parts of a call:
// each sample goes to the first frame from its leaf that belongs to a part
// (the gateway's packages, the go-sdk, net/http, the socket system calls,
// the embedded audit engine), skipping the runtime and the libraries those
// parts call (JSON, CEL, regexp, metrics). Frames of net/http, the go-sdk
// and the sockets are split by leg: a sample whose stack holds the
// gateway's upstream client (the go-sdk client, net/http's HTTP/2 client)
// is the upstream leg's, anything else under the agent's HTTP server the
// agent leg's. It answers "what would a change to one part save at most".
type cpuParts struct {
	total time.Duration
	span  time.Duration
	parts map[string]time.Duration
}

// readCPUParts reads the CPU profile in file.
func readCPUParts(file string) (*cpuParts, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("CPU profile %s: %w", file, err)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, fmt.Errorf("CPU profile %s: no cpu/nanoseconds samples", file)
	}
	c := &cpuParts{span: time.Duration(p.DurationNanos), parts: map[string]time.Duration{}}
	var frames []string
	for _, s := range p.Sample {
		frames = frames[:0]
		for _, loc := range s.Location {
			n := len(frames)
			for _, ln := range loc.Line { // innermost (inlined) first
				if ln.Function != nil && ln.Function.Name != "" {
					frames = append(frames, ln.Function.Name)
				}
			}
			if len(frames) == n {
				// Code outside Go's symbol table: the audit engine's
				// shared libraries (libchdb, the libc it uses).
				name := "[?]"
				if loc.Mapping != nil {
					name = "[" + path.Base(loc.Mapping.File) + "]"
				}
				frames = append(frames, name)
			}
		}
		d := time.Duration(s.Value[vi])
		c.parts[cpuPart(frames)] += d
		c.total += d
	}
	return c, nil
}

// Prefixes of function names, tried in order; the first match decides.
var (
	// upstreamMarks: a stack holding one of these is the upstream leg's.
	upstreamMarks = []string{
		"github.com/modelcontextprotocol/go-sdk/mcp.(*ClientSession)",
		"github.com/modelcontextprotocol/go-sdk/mcp.(*Client)",
		"github.com/modelcontextprotocol/go-sdk/mcp.(*streamableClientConn)",
		"net/http.(*http2ClientConn)",
		"net/http.(*http2clientStream)",
		"net/http.(*http2clientConnReadLoop)",
		"net/http.(*http2Transport)",
		"net/http.(*Transport)",
		"net/http.(*persistConn)",
	}
	// agentMarks: otherwise, a stack holding one of these is the agent
	// leg's.
	agentMarks = []string{"net/http.(*conn)", "net/http.(*connReader)", "net/http.(*response)", "net/http.(*chunkWriter)", "net/http.(*http2serverConn)"}
	// parts: frames that own a sample, and the part they charge.
	parts = []struct{ prefix, part string }{
		{"syscall.", "sockets"},
		{"internal/poll.", "sockets"},
		{"net.(*", "sockets"},
		{"github.com/gatehouse-dev/gatehouse/proxy", "gateway: proxy"},
		{"github.com/gatehouse-dev/gatehouse/internal/guard", "gateway: guardrails"},
		{"github.com/gatehouse-dev/gatehouse/internal/policy", "gateway: policy (CEL included)"},
		{"github.com/gatehouse-dev/gatehouse/internal/identity", "gateway: authentication"},
		{"github.com/gatehouse-dev/gatehouse/internal/audit", "gateway: audit (spool, shipper)"},
		{"github.com/gatehouse-dev/gatehouse/internal/secrets", "gateway: secrets"},
		{"github.com/gatehouse-dev/gatehouse/internal/", "gateway: other"},
		{"github.com/gatehouse-dev/gatehouse/cmd/", "gateway: other"},
		{"github.com/gatehouse-dev/gatehouse/graph", "gateway: other"},
		{"github.com/gatehouse-dev/gatehouse/ent", "gateway: other"},
		{"github.com/gatehouse-dev/gatehouse/workflows", "gateway: other"},
		{"github.com/modelcontextprotocol/go-sdk/", "go-sdk"},
		{"net/http", "net/http"},
		{"net/textproto.", "net/http"},
		{"go.temporal.io/", "embedded Temporal"},
		{"[", "native code (the audit engine: its own count is the \"audit engine\" line)"},
		{"github.com/ebitengine/purego", "native code (the audit engine: its own count is the \"audit engine\" line)"},
	}
	// helpers: frames skipped on the way to an owner: what the parts call.
	helpers = []string{
		"runtime.", "internal/", "sync.", "sync/", "reflect.", "encoding/", "strconv.", "bytes.",
		"strings.", "unicode", "sort.", "slices.", "maps.", "fmt.", "math", "time.", "context.",
		"errors.", "io.", "bufio.", "iter.", "unique.", "weak.", "hash/", "crypto/", "vendor/",
		"container/", "regexp", "log/slog", "mime", "net/url", "net/netip", "os.", "path",
		"github.com/segmentio/", "github.com/google/cel-go/", "cel.dev/", "github.com/prometheus/",
		"google.golang.org/protobuf/", "github.com/google/uuid",
	}
)

// cpuPart names the part a sample's frames (leaf first) charge.
func cpuPart(frames []string) string {
	leg := ""
	switch {
	case hasFrame(frames, upstreamMarks):
		leg = "upstream leg: "
	case hasFrame(frames, agentMarks):
		leg = "agent leg: "
	}
	unowned := ""
frames:
	for _, f := range frames {
		for _, p := range parts {
			if !strings.HasPrefix(f, p.prefix) {
				continue
			}
			switch p.part {
			case "sockets", "go-sdk", "net/http":
				if leg == "" {
					// Not a call's leg (the spool's pwrite, say): the
					// caller above owns it.
					unowned = cmp.Or(unowned, p.part)
					continue frames
				}
				return leg + p.part
			}
			return p.part
		}
		// Assembly helpers of the runtime have bare names (memeqbody).
		if !hasPrefix(f, helpers) && strings.ContainsAny(f, "./") {
			return "other: " + f
		}
	}
	if unowned != "" {
		return "other: " + unowned
	}
	return "runtime: scheduler, collector, idle"
}

func hasFrame(frames, prefixes []string) bool {
	return slices.ContainsFunc(frames, func(f string) bool { return hasPrefix(f, prefixes) })
}

func hasPrefix(f string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(f, p) })
}

// print writes the parts, largest first, with their CPU per call given
// the profiled window's calls per second; parts under 0.5 % are summed in
// one line.
func (c *cpuParts) print(w io.Writer, callsPerSec float64) {
	calls := callsPerSec * c.span.Seconds()
	if c.total == 0 || calls <= 0 {
		fmt.Fprintln(w, "CPU by part: no samples or no calls in the profiled window")
		return
	}
	type row struct {
		part string
		d    time.Duration
	}
	var rows []row
	var small time.Duration
	for part, d := range c.parts {
		if float64(d) < 0.005*float64(c.total) {
			small += d
			continue
		}
		rows = append(rows, row{part, d})
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(b.d, a.d), strings.Compare(a.part, b.part)) })
	if small > 0 {
		rows = append(rows, row{"the rest (parts under 0.5 % each)", small})
	}
	fmt.Fprintf(w, "\ngateway CPU by part of the call (%.1f s of samples over %.1f s, %.0f calls: %.1f µs per call)\n",
		c.total.Seconds(), c.span.Seconds(), calls, float64(c.total.Microseconds())/calls)
	fmt.Fprintf(w, "%7s %9s  %s\n", "share", "µs/call", "part")
	for _, r := range rows {
		fmt.Fprintf(w, "%6.1f%% %9.1f  %s\n", 100*float64(r.d)/float64(c.total), float64(r.d.Microseconds())/calls, r.part)
	}
}
