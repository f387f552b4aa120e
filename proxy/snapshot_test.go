package proxy

import (
	"maps"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// TestCollisionsKeepTheRouteInForce: a name two upstreams serve in one
// virtual server keeps the route the running snapshot has for it; without
// one, every item of that name is withheld. Only the collisions policy
// refuses fail a compile.
func TestCollisionsKeepTheRouteInForce(t *testing.T) {
	doc, err := config.Parse([]byte(`
upstreams:
  - {name: a, transport: streamable-http, url: "http://127.0.0.1:1/mcp"}
  - {name: b, transport: streamable-http, url: "http://127.0.0.1:2/mcp"}
  - {name: c, transport: streamable-http, url: "http://127.0.0.1:3/mcp"}
virtual_servers:
  - {name: vs, include: [{upstream: a}, {upstream: b}, {upstream: c}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat := func(tools ...string) *Catalog {
		c := &Catalog{Init: &mcp.InitializeResult{Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}}}}
		for _, name := range tools {
			c.Tools = append(c.Tools, &mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}})
		}
		return c
	}
	tools := func(s *Snapshot) map[string]string {
		m := map[string]string{}
		for name, r := range s.VS["vs"].Tools {
			m[name] = r.Upstream
		}
		if len(m) != len(s.VS["vs"].ToolDefs) {
			t.Errorf("%d routes but %d definitions", len(m), len(s.VS["vs"].ToolDefs))
		}
		return m
	}

	// b serves deploy; then a and c start serving it too.
	running, err := compile(doc, map[string]*Catalog{"a": cat("echo"), "b": cat("deploy")}, 1, nil)
	if err != nil || len(running.Collisions()) > 0 {
		t.Fatalf("compile: %v, collisions %v", err, running.Collisions())
	}
	cats := map[string]*Catalog{"a": cat("echo", "deploy"), "b": cat("deploy"), "c": cat("deploy", "ls")}
	next, err := compile(doc, cats, 2, running)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tools(next), map[string]string{"echo": "a", "deploy": "b", "ls": "c"}; !maps.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	want := Collision{VS: "vs", Kind: "tool", Name: "deploy", Upstreams: []string{"a", "b", "c"}, Kept: "b"}
	if cs := next.Collisions(); len(cs) != 1 || !cs[0].same(want) || cs[0].Kept != "b" {
		t.Fatalf("collisions = %+v, want %+v", cs, want)
	}
	if got, w := next.Collisions()[0].Withheld(), `virtual_servers "vs": tool "deploy" is exposed by upstreams "a", "b" and "c"; exclude or rename one (upstream "b" keeps it; the others are withheld)`; got != w {
		t.Errorf("Withheld() = %s\nwant %s", got, w)
	}

	// Without a route in force, none keeps it.
	cold, err := compile(doc, cats, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tools(cold), map[string]string{"echo": "a", "ls": "c"}; !maps.Equal(got, want) {
		t.Errorf("tools without a snapshot in force = %v, want %v", got, want)
	}
	if cs := cold.Collisions(); len(cs) != 1 || cs[0].Kept != "" || !strings.HasSuffix(cs[0].Withheld(), "(all of them are withheld)") {
		t.Errorf("collisions without a snapshot in force = %+v", cs)
	}

	for _, tc := range []struct {
		name    string
		p       collisionPolicy
		running *Snapshot
		fails   bool
	}{
		{"start refuses any", refuseCollisions, next, true},
		{"apply tolerates the running snapshot's", refuseNewCollisions, next, false},
		{"apply refuses a new one", refuseNewCollisions, running, true},
		{"apply with nothing running", refuseNewCollisions, nil, true},
		{"a catalog change withholds", withholdCollisions, running, false},
	} {
		err := tc.p.refused(next, tc.running)
		if (err != nil) != tc.fails {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), `tool "deploy" is exposed by upstreams "a", "b" and "c"; exclude or rename one`) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
