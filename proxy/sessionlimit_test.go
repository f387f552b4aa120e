package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSessionLimits: past limits.max_sessions_per_agent, or
// limits.max_sessions, a new session is refused with HTTP 429, a
// Retry-After and JSON-RPC -32054 naming the limit; the sessions already
// open keep working, and once one of them ends a new one is admitted.
func TestSessionLimits(t *testing.T) {
	up := newUpstream(t, "u")
	for _, tc := range []struct{ limits, limit string }{
		{"{max_sessions_per_agent: 2}", "limits.max_sessions_per_agent"},
		{"{max_sessions: 2}", "limits.max_sessions"},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			g, gw := newGateway(t, fmt.Sprintf(`
limits: %s
upstreams: [{name: u, transport: streamable-http, url: %q}]
virtual_servers: [{name: vs, anonymous: true, include: [{upstream: u}]}]
grants: [{subject: {agent: anonymous}, target: {virtual_server: vs, tools: ["*"]}, effect: allow}]
`, tc.limits, up))
			url := gw + "/mcp/vs"
			a := connectClient(t, url, "")
			b := connectClient(t, url, "")
			if n := testutil.ToFloat64(g.metrics.sessions.WithLabelValues("vs")); n != 2 {
				t.Errorf("gatehouse_sessions{vs=\"vs\"} = %v with two sessions initialized, want 2", n)
			}

			resp, err := http.Post(url, "application/json", strings.NewReader(
				`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"third","version":"1"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error struct {
					Code    int
					Message string
					Data    struct {
						RetryAfterSeconds int
						Limit             string
					}
				}
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" ||
				body.Error.Code != CodeRateLimited || body.Error.Data.Limit != tc.limit || !strings.Contains(body.Error.Message, "too many sessions") {
				t.Fatalf("third session: HTTP %d, Retry-After %q, %+v (%v)", resp.StatusCode, resp.Header.Get("Retry-After"), body, err)
			}
			c := mcp.NewClient(&mcp.Implementation{Name: "third", Version: "1"}, nil)
			if _, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil); err == nil || !strings.Contains(err.Error(), "too many sessions") || !strings.Contains(err.Error(), "Too Many Requests") {
				t.Errorf("a go-sdk client's third session: %v, want the refusal (HTTP 429) and why", err)
			}

			resp, err = http.Get(gw + "/sse/vs")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("a legacy SSE session at the limit: HTTP %d, want 429", resp.StatusCode)
			}
			for _, cs := range []*mcp.ClientSession{a, b} {
				if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
					t.Errorf("an open session's call at the limit: %v", err)
				}
			}
			a.Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
				if err == nil {
					cs.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new session 10 s after one ended: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
