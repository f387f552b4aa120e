package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestTransportMatrix calls tools through every pair of agent transport
// (streamable HTTP, legacy SSE) and upstream transport (streamable HTTP,
// SSE, stdio).
func TestTransportMatrix(t *testing.T) {
	streamURL, _ := demoHTTP(t, "streamable-http", "streamy")
	sseURL, _ := demoHTTP(t, "sse", "ssey")
	demo := filepath.Join(binDir, "demo-server")
	cfg := fmt.Sprintf(`
listen: LISTEN
log: {level: debug}
upstreams:
  - {name: up-streamable, transport: streamable-http, url: %q}
  - {name: up-sse, transport: sse, url: %q}
  - {name: up-stdio, transport: stdio, command: %q, args: [-transport, stdio, -name, stdioy]}
virtual_servers:
  - {name: vs-streamable, anonymous: true, include: [{upstream: up-streamable}]}
  - {name: vs-sse, anonymous: true, include: [{upstream: up-sse}]}
  - {name: vs-stdio, anonymous: true, include: [{upstream: up-stdio}]}
`, streamURL, sseURL, demo)
	g := startGateway(t, cfg)

	upstreams := map[string]string{"vs-streamable": "streamy", "vs-sse": "ssey", "vs-stdio": "stdioy"}
	for _, agentTransport := range []string{"streamable-http", "sse"} {
		for vs, name := range upstreams {
			t.Run(agentTransport+"/"+vs, func(t *testing.T) {
				url := g.url(vs)
				if agentTransport == "sse" {
					url = g.sseURL(vs)
				}
				cs := connect(t, agentTransport, url, "", nil)
				if got := cs.InitializeResult().ServerInfo.Name; got != name {
					t.Errorf("serverInfo.name = %q, want the upstream's %q (transparent)", got, name)
				}
				if got, want := callText(t, cs, "echo", map[string]any{"text": "hi"}), "["+name+"] hi"; got != want {
					t.Errorf("echo = %q, want %q", got, want)
				}
				res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 3}})
				if err != nil {
					t.Fatal(err)
				}
				if sc, _ := res.StructuredContent.(map[string]any); sc["sum"] != 5.0 {
					t.Errorf("add structured = %v, want sum 5", res.StructuredContent)
				}
				res, err = cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "fail"})
				if err != nil {
					t.Fatal(err)
				}
				if !res.IsError || !strings.Contains(textOf(t, res), "failed") {
					t.Errorf("fail: isError=%v content=%q", res.IsError, textOf(t, res))
				}
				rr, err := cs.ReadResource(ctxT(t), &mcp.ReadResourceParams{URI: "demo://items/42"})
				if err != nil {
					t.Fatal(err)
				}
				if rr.Contents[0].Text != "item 42" {
					t.Errorf("template read = %q", rr.Contents[0].Text)
				}
				pr, err := cs.GetPrompt(ctxT(t), &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"name": "ada"}})
				if err != nil {
					t.Fatal(err)
				}
				if got := pr.Messages[0].Content.(*mcp.TextContent).Text; got != "Hello, ada (from "+name+")" {
					t.Errorf("prompt = %q", got)
				}
			})
		}
	}
}

// protoRecorder records the protocol of every response.
type protoRecorder struct {
	base   http.RoundTripper
	mu     sync.Mutex
	protos map[string]int
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(r)
	if err == nil {
		p.mu.Lock()
		p.protos[resp.Proto]++
		p.mu.Unlock()
	}
	return resp, err
}

// TestHTTP2Cleartext: agents that speak HTTP/2 with prior knowledge (h2c)
// get it, and sessions over it work like HTTP/1.1 ones, event stream
// included; HTTP/1.1 agents are unaffected (the rest of the suite).
func TestHTTP2Cleartext(t *testing.T) {
	up, _ := demoHTTP(t, "streamable-http", "h2")
	g := startGateway(t, withAllowAll(fmt.Sprintf(`
listen: LISTEN
upstreams: [{name: up, transport: streamable-http, url: %q}]
virtual_servers: [{name: vs, anonymous: true, include: [{upstream: up}]}]
`, up)))
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	rec := &protoRecorder{base: tr, protos: map[string]int{}}
	c := mcp.NewClient(&mcp.Implementation{Name: "h2c", Version: "1"}, nil)
	var sessions []*mcp.ClientSession
	for range 4 { // several sessions share the connection
		s, err := c.Connect(ctxT(t), &mcp.StreamableClientTransport{Endpoint: g.url("vs"), HTTPClient: &http.Client{Transport: rec}, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatalf("connect over h2c: %v", err)
		}
		sessions = append(sessions, s)
	}
	for i, s := range sessions {
		if got, want := callText(t, s, "echo", map[string]any{"text": fmt.Sprint(i)}), fmt.Sprintf("[h2] %d", i); got != want {
			t.Errorf("echo over h2c = %q, want %q", got, want)
		}
		_ = s.Close()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.protos) != 1 || rec.protos["HTTP/2.0"] == 0 {
		t.Errorf("response protocols = %v, want only HTTP/2.0", rec.protos)
	}
}

// TestH2CUpstream: an upstream switched to h2c over GraphQL is reconnected
// and spoken to over cleartext HTTP/2 (the demo upstream records each
// message's protocol); h2c is refused where it cannot apply.
func TestH2CUpstream(t *testing.T) {
	addr := freeAddr(t)
	rec := filepath.Join(t.TempDir(), "up.jsonl")
	startProc(t, filepath.Join(binDir, "demo-server"), "-transport", "streamable-http", "-addr", addr, "-name", "h2", "-record", rec)
	waitTCP(t, addr)
	g := startGateway(t, withAllowAll(fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: up, transport: streamable-http, url: "http://%s/mcp"}
  - {name: local, transport: stdio, command: %q, args: [-transport, stdio]}
virtual_servers: [{name: vs, anonymous: true, include: [{upstream: up}]}]
`, addr, filepath.Join(binDir, "demo-server"))))

	lastProto := func() string {
		t.Helper()
		var proto string
		for _, r := range readRecords(t, rec) {
			if r.Method == "tools/call" {
				proto = r.Proto
			}
		}
		return proto
	}
	cs := connect(t, "streamable-http", g.url("vs"), "", nil)
	callText(t, cs, "echo", map[string]any{"text": "one"})
	if got := lastProto(); got != "HTTP/1.1" {
		t.Fatalf("upstream got the call over %q before h2c, want HTTP/1.1", got)
	}

	d := mustGQL(t, g, `query { upstreams(where: {name: "up"}) { edges { node { id h2c } } } }`, nil)
	id := dig(d, "upstreams", "edges", 0, "node", "id")
	mustGQL(t, g, `mutation($id: ID!) { updateUpstream(id: $id, input: {h2c: true}) { h2c } }`, map[string]any{"id": id})
	pollUntil(t, "a call over h2c", func() bool {
		s, err := mcp.NewClient(&mcp.Implementation{Name: "h2c-check", Version: "1"}, nil).Connect(ctxT(t),
			&mcp.StreamableClientTransport{Endpoint: g.url("vs"), MaxRetries: -1}, nil)
		if err != nil {
			return false
		}
		defer s.Close()
		if _, err := s.CallTool(ctxT(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "two"}}); err != nil {
			return false
		}
		return lastProto() == "HTTP/2.0"
	})

	// Like every rule of the document, h2c where it cannot apply is
	// refused by the mutation, naming the rule; nothing changes.
	d = mustGQL(t, g, `query { upstreams(where: {name: "local"}) { edges { node { id } } } }`, nil)
	r := gql(t, g, g.adminToken, `mutation($id: ID!) { updateUpstream(id: $id, input: {h2c: true}) { h2c } }`,
		map[string]any{"id": dig(d, "upstreams", "edges", 0, "node", "id")})
	if got := fmt.Sprint(r.Errors); !strings.Contains(got, "INVALID") || !strings.Contains(got, "url, headers and h2c apply only to HTTP transports") {
		t.Errorf("h2c on a stdio upstream: %s, want INVALID with the h2c rule", got)
	}
	d = mustGQL(t, g, `query { validateConfig { valid } }`, nil)
	if got := fmt.Sprint(d["validateConfig"]); !strings.Contains(got, "valid:true") {
		t.Errorf("validateConfig after the refused change = %s, want valid", got)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "three"}); got != "[h2] three" {
		t.Errorf("echo after an invalid revision = %q, want [h2] three", got)
	}
}
