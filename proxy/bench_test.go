package proxy

import (
	"context"
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkCallTool measures one tools/call end to end over loopback HTTP,
// directly against a go-sdk upstream and through a transparent virtual
// server, for session-based (2025-11-25) and sessionless (2026-07-28)
// agents. Client, gateway and upstream share the process, so ns/op is the
// whole round trip's CPU on this machine, not the gateway's alone; the
// difference between direct and gateway is what the gateway adds.
// `make bench` runs it; test/load (issue #9) measures the gateway process
// in isolation.
func BenchmarkCallTool(b *testing.B) {
	up := newUpstream(b, "a")
	_, gw := newGateway(b, fmt.Sprintf(`
upstreams: [{name: a, transport: streamable-http, url: %q}]
virtual_servers: [{name: vs, anonymous: true, include: [{upstream: a}]}]
grants: [{subject: {agent: anonymous}, target: {virtual_server: vs, tools: ["*"], resources: ["*"], prompts: ["*"]}, effect: allow}]
`, up))
	for _, target := range []struct{ name, url string }{{"direct", up}, {"gateway", gw + "/mcp/vs"}} {
		for _, v := range protocolVersions {
			b.Run(target.name+"/"+v, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					cs := connectClient(b, target.url, v)
					params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}
					for pb.Next() {
						if _, err := cs.CallTool(context.Background(), params); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
