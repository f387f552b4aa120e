package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// decisionFixture is a typical rule set: 3 virtual servers over 20 tools,
// 10 agents in 3 teams, 50 grants (10 with CEL conditions) and 20
// guardrail rules.
func decisionFixture(tb testing.TB) (*Snapshot, []string) {
	tb.Helper()
	var y strings.Builder
	y.WriteString("upstreams: [{name: up, transport: streamable-http, url: 'http://127.0.0.1:1/mcp'}]\nvirtual_servers:\n")
	for _, vs := range []string{"ops", "dev", "data"} {
		fmt.Fprintf(&y, "  - {name: %s, include: [{upstream: up}]}\n", vs)
	}
	y.WriteString("agents:\n")
	var keys []string
	for i := range 10 {
		key := identity.NewAPIKey()
		keys = append(keys, key)
		fmt.Fprintf(&y, "  - {name: agent%d, team: team%d, roles: [r%d], api_keys: [{sha256: %s}]}\n", i, i%3, i%4, identity.HashKey(key))
	}
	y.WriteString("grants:\n")
	for i := range 50 {
		vs := []string{"ops", "dev", "data"}[i%3]
		subject := fmt.Sprintf("{team: team%d}", i%3)
		if i%5 == 1 {
			subject = fmt.Sprintf("{role: r%d}", i%4)
		}
		effect := "allow"
		if i%7 == 3 {
			effect = "deny"
		}
		when := ""
		if i%5 == 0 {
			when = `, when: 'has(args.path) ? args.path.startsWith("/tmp/") : true'`
		}
		fmt.Fprintf(&y, "  - {name: g%d, subject: %s, target: {virtual_server: %s, tools: [\"tool%d*\", \"read_*\"]}, effect: %s%s}\n", i, subject, vs, i%20, effect, when)
	}
	y.WriteString("guardrails:\n")
	dets := []string{"secrets", "pii", "injection", "regex", "denylist"}
	for i := range 20 {
		d := dets[i%len(dets)]
		extra := ""
		switch d {
		case "regex":
			extra = `, pattern: '(?i)drop\s+table'`
		case "denylist":
			extra = ", terms: [confidential, internal-only]"
		}
		action := []string{"flag", "redact", "block"}[i%3]
		if d == "injection" {
			action = "flag"
		}
		fmt.Fprintf(&y, "  - {name: r%d, detector: %s, action: %s%s}\n", i, d, action, extra)
	}
	doc, err := config.Parse([]byte(y.String()))
	if err != nil {
		tb.Fatal(err)
	}
	cat := &Catalog{Init: &mcp.InitializeResult{Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}}}}
	for i := range 20 {
		cat.Tools = append(cat.Tools, &mcp.Tool{Name: fmt.Sprintf("tool%d", i), Description: "A tool.",
			InputSchema: map[string]any{"type": "object", "properties": map[string]any{
				"path": map[string]any{"type": "string"}, "body": map[string]any{"type": "string"}}}})
	}
	snap, err := compile(doc, map[string]*Catalog{"up": cat}, 1, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return snap, keys
}

// BenchmarkDecision measures the decision overhead of one tools/call:
// authentication (API key), policy (50 grants), rate limits, argument
// validation and request guardrails (20 rules) over ~1 KB of arguments. It
// reports the median (p50-ns) and p99 besides the mean.
func BenchmarkDecision(b *testing.B) {
	snap, keys := decisionFixture(b)
	limiter := policy.NewLimiter()
	args := map[string]any{"path": "/tmp/report.txt", "body": strings.Repeat("The quarterly numbers look fine. ", 30)}
	req, _ := http.NewRequest(http.MethodPost, "/mcp/ops", nil)
	req.Header.Set("Authorization", "Bearer "+keys[0])
	vs := snap.VS["ops"]
	r := vs.Tools["tool3"]
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p, err := snap.Keys.Authenticate(req.Context(), req)
		if err != nil {
			b.Fatal(err)
		}
		pr := &policy.Request{Principal: p, VirtualServer: "ops", Kind: policy.KindTool, Name: "tool3", Upstream: r.Upstream, Args: args, Time: start}
		d := snap.access.policy.Decide(pr)
		_ = d
		limiter.Allow(p, "ops", "tool3", start)
		if v := snap.access.args[toolKey{r.Upstream, r.Name}]; v != nil {
			if err := v.Validate(args); err != nil {
				b.Fatal(err)
			}
		}
		snap.access.guards.Check(config.DirectionRequest, "ops", "tool3", "args", map[string]any{"path": args["path"], "body": args["body"]})
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	if n := len(durations); n > 0 {
		b.ReportMetric(float64(durations[n/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(durations[n*99/100].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkCheckResult measures the response guardrails (20 rules) on a
// tools/call result of ~1 KB of text, decoded from its JSON as the
// gateway's upstream client decodes it.
func BenchmarkCheckResult(b *testing.B) {
	snap, _ := decisionFixture(b)
	g := &Gateway{}
	g.snap.Store(snap)
	wire, err := json.Marshal(&mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("The quarterly numbers look fine. ", 30)}},
		StructuredContent: map[string]any{"rows": 3.0, "status": "ok"}})
	if err != nil {
		b.Fatal(err)
	}
	res := new(mcp.CallToolResult)
	if err := json.Unmarshal(wire, res); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := checkResult(ctx, g, "ops", "tool3", res); err != nil {
			b.Fatal(err)
		}
	}
}
