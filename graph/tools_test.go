package graph_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// fakeGateway stands in for the running data path, which the end-to-end
// tests exercise for real: it serves what the test puts in it.
type fakeGateway struct {
	mu      sync.Mutex
	tools   map[string][]graph.UpstreamTool // by upstream; absent: unknown
	down    map[string]error
	exposed map[string][]graph.ExposedTool // by virtual server; absent: unknown
	// explain answers Explain by "agent/vs/tool"; absent: allowed and
	// visible. hidden lists "agent/vs/tool" that are not visible.
	explain map[string]*graph.Explanation
	// strangers are agents the running snapshot does not know.
	strangers map[string]bool
	// args holds the arguments of the last Explain.
	args map[string]any
}

var _ graph.Gateway = (*fakeGateway)(nil)

func (g *fakeGateway) ListUpstreamTools(_ context.Context, upstream string) ([]graph.UpstreamTool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.down[upstream]; err != nil {
		return nil, err
	}
	tools, ok := g.tools[upstream]
	if !ok {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownUpstream, upstream)
	}
	return tools, nil
}

// CheckConfig accepts every document: what the running gateway finds is
// tested through the real gateway (test/e2e).
func (g *fakeGateway) CheckConfig(context.Context, *config.Document) error { return nil }

func (g *fakeGateway) ExposedTools(_ context.Context, vs string) ([]graph.ExposedTool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tools, ok := g.exposed[vs]
	if !ok {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownVirtualServer, vs)
	}
	return tools, nil
}

func (g *fakeGateway) Explain(_ context.Context, agent, vs, tool string, args map[string]any) (*graph.Explanation, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.args = args
	tools, ok := g.exposed[vs]
	if !ok {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownVirtualServer, vs)
	}
	if !slices.ContainsFunc(tools, func(t graph.ExposedTool) bool { return t.Name == tool }) {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownTool, tool)
	}
	if g.strangers[agent] {
		return nil, fmt.Errorf("%w %q", graph.ErrUnknownAgent, agent)
	}
	if e := g.explain[agent+"/"+vs+"/"+tool]; e != nil {
		return e, nil
	}
	return &graph.Explanation{Effect: "allow", Reason: "allowed by grant all", Visible: true,
		Grants: []graph.ExplainedGrant{{Grant: "all", Effect: "allow", Reason: "subject and target match"}}}, nil
}

func (g *fakeGateway) set(upstream string, tools ...graph.UpstreamTool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tools[upstream] = tools
}

// withGateway serves e's store with gw as the running gateway.
func (e *env) withGateway(gw graph.Gateway) {
	e.h = graph.NewHandler(e.client, &graph.HandlerOptions{Gateway: gw, Logger: slog.New(slog.DiscardHandler)})
}

type toolOut struct {
	ID, Name, Title, Description, DefinitionHash string
	InputSchema, OutputSchema, Annotations       json.RawMessage
	FirstSeen, LastSeen                          time.Time
	Upstream                                     struct{ Name string }
}

const discover = `mutation($u: String!) { discoverTools(upstream: $u) {
	id name title description definitionHash inputSchema outputSchema annotations firstSeen lastSeen upstream { name } } }`

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestDiscoverTools checks that discoverTools records what the gateway
// says an upstream serves: new tools created, known ones updated (first
// seen kept), vanished ones kept with their old last seen, the definition
// hash over a canonical JSON form, and the errors when the gateway, the
// upstream or the store cannot answer.
func TestDiscoverTools(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		e.createUpstream("everything", "streamable_http", "http://127.0.0.1:1/mcp")
		e.createUpstream("ghost", "stdio", "")
		e.createUpstream("broken", "stdio", "")

		// Without a gateway: UNAVAILABLE.
		if errs := e.fails(discover, map[string]any{"u": "everything"}); errs[0].Extensions["code"] != "UNAVAILABLE" {
			t.Errorf("no gateway: %+v", errs)
		}

		gw := &fakeGateway{tools: map[string][]graph.UpstreamTool{}, down: map[string]error{"broken": errors.New("connect: connection refused")}}
		e.withGateway(gw)
		for _, tc := range []struct{ upstream, code, field string }{
			{"nowhere", "NOT_FOUND", "upstream"}, // not in the store
			{"ghost", "NOT_FOUND", "upstream"},   // not in the running gateway
			{"broken", "UNAVAILABLE", ""},        // does not answer
		} {
			errs := e.fails(discover, map[string]any{"u": tc.upstream})
			if f, _ := errs[0].Extensions["field"].(string); errs[0].Extensions["code"] != tc.code || f != tc.field {
				t.Errorf("%s: %+v", tc.upstream, errs)
			}
		}

		echo := graph.UpstreamTool{
			Name: "echo", Title: "Echo", Description: "Echoes.",
			InputSchema: json.RawMessage(`{"type": "object", "properties": {"message": {"type": "string"}}}`),
		}
		add := graph.UpstreamTool{
			Name: "add", Description: "Adds.",
			InputSchema:  json.RawMessage(`{"type":"object"}`),
			OutputSchema: json.RawMessage(`{"type":"object","properties":{"sum":{"type":"number"}}}`),
			Annotations:  json.RawMessage(`{"readOnlyHint":true,"idempotentHint":1.50}`),
		}
		gw.set("everything", echo, add)
		var first struct{ DiscoverTools []toolOut }
		e.must(discover, map[string]any{"u": "everything"}, &first)
		tools := first.DiscoverTools
		if len(tools) != 2 || tools[0].Name != "add" || tools[1].Name != "echo" {
			t.Fatalf("discovered %+v", tools)
		}
		// The hash covers a canonical form: keys sorted, no spaces,
		// numbers as written, absent parts null.
		wantEcho := sha(`{"annotations":null,"description":"Echoes.","inputSchema":{"properties":{"message":{"type":"string"}},"type":"object"},"name":"echo","outputSchema":null,"title":"Echo"}`)
		wantAdd := sha(`{"annotations":{"idempotentHint":1.50,"readOnlyHint":true},"description":"Adds.","inputSchema":{"type":"object"},"name":"add","outputSchema":{"properties":{"sum":{"type":"number"}},"type":"object"},"title":""}`)
		if tools[1].DefinitionHash != wantEcho || tools[0].DefinitionHash != wantAdd {
			t.Errorf("hashes %s %s, want %s %s", tools[1].DefinitionHash, tools[0].DefinitionHash, wantEcho, wantAdd)
		}
		if e := tools[1]; e.Title != "Echo" || e.Upstream.Name != "everything" || !e.FirstSeen.Equal(e.LastSeen) || string(e.OutputSchema) != "null" ||
			!sameJSON(e.InputSchema, map[string]any{"type": "object", "properties": map[string]any{"message": map[string]any{"type": "string"}}}) {
			t.Errorf("echo %+v", e)
		}
		if !sameJSON(tools[0].Annotations, map[string]any{"readOnlyHint": true, "idempotentHint": 1.5}) {
			t.Errorf("annotations %s", tools[0].Annotations)
		}

		// The same definition, written differently, hashes the same; a
		// changed one differently. add vanishes, sub appears.
		time.Sleep(10 * time.Millisecond)
		echo.InputSchema = json.RawMessage(`{"properties":{"message":{"type":"string"}},"type":"object"}`)
		sub := graph.UpstreamTool{Name: "sub", Description: "Subtracts."}
		gw.set("everything", sub, echo)
		var second struct{ DiscoverTools []toolOut }
		e.must(discover, map[string]any{"u": "everything"}, &second)
		tools = second.DiscoverTools
		if len(tools) != 2 || tools[0].Name != "echo" || tools[1].Name != "sub" {
			t.Fatalf("second discovery %+v", tools)
		}
		if e, was := tools[0], first.DiscoverTools[1]; e.ID != was.ID || e.DefinitionHash != wantEcho || !e.FirstSeen.Equal(was.FirstSeen) || !e.LastSeen.After(was.LastSeen) {
			t.Errorf("echo rediscovered %+v (was %+v)", e, was)
		}
		echo.Description = "Echoes back."
		gw.set("everything", echo)
		var third struct{ DiscoverTools []toolOut }
		e.must(discover, map[string]any{"u": "everything"}, &third)
		if e := third.DiscoverTools[0]; e.DefinitionHash == wantEcho || e.Description != "Echoes back." {
			t.Errorf("changed echo: %+v", e)
		}

		// Vanished tools keep their rows and their last sighting.
		var all struct {
			Tools struct {
				Edges []struct{ Node toolOut }
			}
		}
		e.must(`{ tools(where: {hasUpstreamWith: {name: "everything"}}, orderBy: [{field: NAME}]) { edges { node { name lastSeen } } } }`, nil, &all)
		if n := len(all.Tools.Edges); n != 3 {
			t.Fatalf("%d tools stored, want 3", n)
		}
		if a := all.Tools.Edges[0].Node; a.Name != "add" || !a.LastSeen.Equal(first.DiscoverTools[0].LastSeen) {
			t.Errorf("vanished tool %+v", a)
		}

		// Discovery is in the change log, by the admin.
		if l := e.changes(map[string]any{"entityType": "Tool", "op": "create"}); len(l) != 3 || l[0].Actor != "token:root" {
			t.Errorf("tool creations logged: %+v", l)
		}

		// Inside an operation with other mutations it joins their transaction.
		e.must(`mutation { discoverTools(upstream: "everything") { name } createTeam(input: {name: "t"}) { id } }`, nil, nil)
		errs := e.fails(`mutation { discoverTools(upstream: "everything") { name } createTeam(input: {name: "bad name"}) { id } }`, nil)
		if errs[0].Extensions["code"] != "INVALID" {
			t.Errorf("%+v", errs)
		}
	})
}

// TestEffectiveTools checks effectiveTools against the fake gateway: the
// exposed tools with the discovered Tool behind each, and the errors.
func TestEffectiveTools(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		const q = `query($vs: String!, $agent: String) { effectiveTools(virtualServer: $vs, agent: $agent) {
			name upstream upstreamTool description tool { name definitionHash upstream { name } } } }`
		if errs := e.fails(q, map[string]any{"vs": "ops"}); errs[0].Extensions["code"] != "UNAVAILABLE" {
			t.Errorf("no gateway: %+v", errs)
		}
		e.createUpstream("everything", "streamable_http", "http://127.0.0.1:1/mcp")
		e.must(`mutation { createAgent(input: {name: "ci-bot"}) { id } }`, nil, nil)
		gw := &fakeGateway{
			tools: map[string][]graph.UpstreamTool{"everything": {{Name: "echo", Description: "Echoes."}}},
			exposed: map[string][]graph.ExposedTool{"ops": {
				{Name: "say", Upstream: "everything", UpstreamTool: "echo", Description: "Repeat a message."},
				{Name: "remember", Upstream: "memory", UpstreamTool: "create_entities", Description: "Stores."},
			}},
		}
		e.withGateway(gw)
		e.must(discover, map[string]any{"u": "everything"}, nil)

		type effective struct {
			Name, Upstream, UpstreamTool, Description string
			Tool                                      *struct {
				Name, DefinitionHash string
				Upstream             struct{ Name string }
			}
		}
		for _, agent := range []any{nil, "ci-bot"} {
			var out struct{ EffectiveTools []effective }
			e.must(q, map[string]any{"vs": "ops", "agent": agent}, &out)
			got := out.EffectiveTools
			if len(got) != 2 || got[0].Name != "say" || got[0].UpstreamTool != "echo" || got[0].Description != "Repeat a message." ||
				got[0].Tool == nil || got[0].Tool.Name != "echo" || got[0].Tool.Upstream.Name != "everything" || got[0].Tool.DefinitionHash == "" ||
				got[1].Name != "remember" || got[1].Tool != nil {
				t.Errorf("agent %v: %+v", agent, got)
			}
		}
		for _, tc := range []struct {
			vars        map[string]any
			code, field string
		}{
			{map[string]any{"vs": "nope"}, "NOT_FOUND", "virtualServer"},
			{map[string]any{"vs": "ops", "agent": "ghost"}, "NOT_FOUND", "agent"},
		} {
			errs := e.fails(q, tc.vars)
			if errs[0].Extensions["code"] != tc.code || errs[0].Extensions["field"] != tc.field {
				t.Errorf("%v: %+v", tc.vars, errs)
			}
		}
	})
}
