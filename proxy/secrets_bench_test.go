package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
	"github.com/gatehouse-dev/gatehouse/internal/secrets/vaulttest"
)

// BenchmarkCallToolSecret is BenchmarkCallTool/gateway with a KV secret
// from a real Vault injected as a header into every call (cached, the
// default 30 s TTL): the difference is what just-in-time injection costs
// a call (resolve, inject, scrub the result for echoes).
func BenchmarkCallToolSecret(b *testing.B) {
	v := vaulttest.Start(b)
	v.PutKV(b, "secret", "bench", map[string]any{"token": "bench-token-value"})
	vc, err := secrets.NewClient(secrets.Config{Address: v.Addr(), Token: v.RootToken(), KVCacheTTL: 30 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	vc.Start(context.Background())
	b.Cleanup(vc.Close)
	up := newUpstream(b, "a")
	d, err := config.Parse(fmt.Appendf(nil, `
upstreams: [{name: a, transport: streamable-http, url: %q}]
virtual_servers: [{name: vs, anonymous: true, include: [{upstream: a}]}]
grants: [{subject: {agent: anonymous}, target: {virtual_server: vs, tools: ["*"]}, effect: allow}]
secret_bindings: [{name: tok, upstream: a, source: kv, path: secret/bench, key: token, injection: header, target: Authorization, template: "Bearer {{.Value}}"}]
`, up))
	if err != nil {
		b.Fatal(err)
	}
	_, url := startGateway(b, d, &Options{Logger: quietLogger(), Secrets: vc})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		cs := connectClient(b, url+"/mcp/vs", "2025-11-25")
		params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}
		for pb.Next() {
			if _, err := cs.CallTool(context.Background(), params); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
