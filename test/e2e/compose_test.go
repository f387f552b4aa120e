package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// These tests cover virtual-server composition (selection, renames,
// overrides, identity), routing refusals, name collisions, configuration
// errors, SIGHUP reloads under a live session, and list changes announced
// by upstreams — all through the real `gatehouse serve` binary.

// composeConfig composes two demo servers, alpha over streamable HTTP and
// beta over stdio, into three virtual servers:
//
//	composed: alpha's echo (as say) and add; beta's echo and fail; alpha's
//	          greet, beta's greet (as hello); alpha's readme resource and
//	          beta's item template.
//	plain:    alpha as is (transparent).
//	globbed:  beta's a* tools only; no prompts, resources or templates.
const composeConfig = `
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
  - {name: beta, transport: stdio, command: %q, args: [-transport, stdio, -name, beta]}
virtual_servers:
  - name: composed
    anonymous: true
    include:
      - upstream: alpha
        tools: [echo, "add*"]
        exclude_tools: [add_tool]
        rename: {echo: say}
        descriptions: {say: "Say something, through alpha."}
        resource_templates: []
      - upstream: beta
        exclude_tools: ["a*", slow, progress, roots, env, rug_pull, deploy, whoami, echo_header]
        resources: []
        rename_prompts: {greet: hello}
  - {name: plain, anonymous: true, include: [{upstream: alpha}]}
  - name: globbed
    anonymous: true
    include: [{upstream: beta, tools: ["a*"], prompts: [], resources: [], resource_templates: []}]
`

// allDemoTools is everything the demo server serves before add_tool runs.
var allDemoTools = []string{"add", "add_tool", "ask_llm", "ask_user", "deploy", "echo", "echo_header", "env", "fail", "progress", "roots", "rug_pull", "slow", "whoami"}

// startComposed starts alpha, the gateway (which spawns beta) and returns
// both; beta's stderr reaches the gateway's log.
func startComposed(t *testing.T) (*gateway, *proc) {
	t.Helper()
	alphaURL, alpha := demoHTTP(t, "streamable-http", "alpha")
	g := startGateway(t, fmt.Sprintf(composeConfig, alphaURL, filepath.Join(binDir, "demo-server")))
	return g, alpha
}

// TestComposeVirtualServers checks what each composed virtual server
// exposes, where each exposed name routes, and how each identifies itself.
func TestComposeVirtualServers(t *testing.T) {
	t.Parallel()
	g, alpha := startComposed(t)

	type feature struct{ name, wantText string }
	for _, tc := range []struct {
		vs               string
		serverName       string
		instructions     string
		tools            []string
		descriptions     map[string]string
		calls            []feature // echo-like tool -> text for argument "hi"
		prompts          []string
		promptTexts      []feature // prompt -> text for name "ada"
		resources        []string
		templates        []string
		reads            []feature // URI -> text
		templateUpstream string    // upstream whose template serves demo://items/7
	}{
		{
			vs:           "composed",
			serverName:   "gatehouse/composed",
			instructions: "Gatehouse virtual server composed (upstreams: alpha, beta)",
			tools:        []string{"add", "echo", "fail", "say"},
			descriptions: map[string]string{
				"say":  "Say something, through alpha.", // overridden
				"echo": "Echo the text back.",           // beta's own
				"add":  "Add two numbers.",
			},
			calls:            []feature{{"say", "[alpha] hi"}, {"echo", "[beta] hi"}},
			prompts:          []string{"greet", "hello"},
			promptTexts:      []feature{{"greet", "Hello, ada (from alpha)"}, {"hello", "Hello, ada (from beta)"}},
			resources:        []string{"demo://readme"},
			templates:        []string{"demo://items/{id}"},
			reads:            []feature{{"demo://readme", "Demo server alpha"}, {"demo://items/7", "item 7"}},
			templateUpstream: "beta",
		},
		{
			vs:               "plain",
			serverName:       "alpha", // transparent: mirrors the upstream
			instructions:     "Demo MCP server alpha",
			tools:            allDemoTools,
			descriptions:     map[string]string{"echo": "Echo the text back."},
			calls:            []feature{{"echo", "[alpha] hi"}},
			prompts:          []string{"greet"},
			promptTexts:      []feature{{"greet", "Hello, ada (from alpha)"}},
			resources:        []string{"demo://readme"},
			templates:        []string{"demo://items/{id}"},
			reads:            []feature{{"demo://readme", "Demo server alpha"}, {"demo://items/7", "item 7"}},
			templateUpstream: "alpha",
		},
		{
			vs:           "globbed",
			serverName:   "gatehouse/globbed",
			instructions: "Gatehouse virtual server globbed (upstreams: beta)",
			tools:        []string{"add", "add_tool", "ask_llm", "ask_user"},
		},
	} {
		t.Run(tc.vs, func(t *testing.T) {
			t.Parallel()
			cs := connect(t, "streamable-http", g.url(tc.vs), "", nil)
			init := cs.InitializeResult()
			if init.ServerInfo == nil || init.ServerInfo.Name != tc.serverName {
				t.Errorf("serverInfo = %+v, want name %q", init.ServerInfo, tc.serverName)
			}
			if init.Instructions != tc.instructions {
				t.Errorf("instructions = %q, want %q", init.Instructions, tc.instructions)
			}

			defs := toolDefs(t, cs)
			if got := sortedKeys(defs); !slices.Equal(got, tc.tools) {
				t.Errorf("tools/list = %v, want exactly %v", got, tc.tools)
			}
			for name, want := range tc.descriptions {
				if d := defs[name]; d == nil || d.Description != want {
					t.Errorf("tool %s description = %q, want %q", name, descOf(d), want)
				}
			}
			for _, c := range tc.calls {
				if got := callText(t, cs, c.name, map[string]any{"text": "hi"}); got != c.wantText {
					t.Errorf("call %s = %q, want %q", c.name, got, c.wantText)
				}
			}

			var prompts []string
			for p, err := range cs.Prompts(ctxT(t), nil) {
				if err != nil {
					t.Fatalf("prompts/list: %v", err)
				}
				prompts = append(prompts, p.Name)
			}
			slices.Sort(prompts)
			if !slices.Equal(prompts, tc.prompts) {
				t.Errorf("prompts/list = %v, want exactly %v", prompts, tc.prompts)
			}
			for _, p := range tc.promptTexts {
				res, err := cs.GetPrompt(ctxT(t), &mcp.GetPromptParams{Name: p.name, Arguments: map[string]string{"name": "ada"}})
				if err != nil {
					t.Errorf("prompts/get %s: %v", p.name, err)
					continue
				}
				if got := res.Messages[0].Content.(*mcp.TextContent).Text; got != p.wantText {
					t.Errorf("prompts/get %s = %q, want %q", p.name, got, p.wantText)
				}
			}

			var resources, templates []string
			for r, err := range cs.Resources(ctxT(t), nil) {
				if err != nil {
					t.Fatalf("resources/list: %v", err)
				}
				resources = append(resources, r.URI)
			}
			for r, err := range cs.ResourceTemplates(ctxT(t), nil) {
				if err != nil {
					t.Fatalf("resources/templates/list: %v", err)
				}
				templates = append(templates, r.URITemplate)
			}
			if !slices.Equal(resources, tc.resources) {
				t.Errorf("resources/list = %v, want exactly %v", resources, tc.resources)
			}
			if !slices.Equal(templates, tc.templates) {
				t.Errorf("resources/templates/list = %v, want exactly %v", templates, tc.templates)
			}
			for _, r := range tc.reads {
				res, err := cs.ReadResource(ctxT(t), &mcp.ReadResourceParams{URI: r.name})
				if err != nil {
					t.Errorf("resources/read %s: %v", r.name, err)
					continue
				}
				if got := res.Contents[0].Text; got != r.wantText {
					t.Errorf("resources/read %s = %q, want %q", r.name, got, r.wantText)
				}
			}
			if tc.templateUpstream != "" {
				// The item text does not name the server, so the gateway's
				// access log tells which upstream served the read. The log
				// travels through a pipe: wait for the entry.
				pollUntil(t, "the access log entry of the read", func() bool {
					return requestEntry(g, tc.vs, "resources/read", "demo://items/7") != nil
				})
				if got := requestUpstream(g, tc.vs, "resources/read", "demo://items/7"); got != tc.templateUpstream {
					t.Errorf("demo://items/7 on %s was served by upstream %q, want %q", tc.vs, got, tc.templateUpstream)
				}
			}
			if len(tc.resources)+len(tc.templates) == 0 {
				// Nothing selected: reads are refused, not forwarded.
				if _, err := cs.ReadResource(ctxT(t), &mcp.ReadResourceParams{URI: "demo://readme"}); err == nil {
					t.Errorf("resources/read demo://readme on %s succeeded; resources: [] must expose none", tc.vs)
				}
			}
			if len(tc.prompts) == 0 {
				if _, err := cs.GetPrompt(ctxT(t), &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"name": "x"}}); err == nil {
					t.Errorf("prompts/get greet on %s succeeded; prompts: [] must expose none", tc.vs)
				}
			}
		})
	}

	t.Run("routing", func(t *testing.T) {
		t.Parallel()
		// add and fail carry no server name in their results: the upstream's
		// own record of the call proves where it went.
		cs := connect(t, "streamable-http", g.url("composed"), "", nil)
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 3}})
		if err != nil {
			t.Fatal(err)
		}
		if sc, _ := res.StructuredContent.(map[string]any); sc["sum"] != 5.0 {
			t.Errorf("add = %v, want sum 5", res.StructuredContent)
		}
		res, err = cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "fail"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.IsError {
			t.Errorf("fail: isError = false")
		}
		pollUntil(t, "alpha to record add", func() bool { return slices.Contains(upstreamCalls(alpha.Output(), "alpha"), "add") })
		pollUntil(t, "beta to record fail", func() bool { return slices.Contains(upstreamCalls(g.Output(), "beta"), "fail") })
		if slices.Contains(upstreamCalls(g.Output(), "beta"), "add") {
			t.Errorf("beta received add, which composed takes from alpha")
		}
		if slices.Contains(upstreamCalls(alpha.Output(), "alpha"), "fail") {
			t.Errorf("alpha received fail, which composed takes from beta")
		}
	})
}

// TestComposeRefusesUnexposedTools calls names a virtual server does not
// expose — excluded, outside an include list or glob, renamed away, or
// nonexistent — and checks each is refused with a JSON-RPC error and never
// reaches an upstream.
func TestComposeRefusesUnexposedTools(t *testing.T) {
	t.Parallel()
	g, alpha := startComposed(t)
	sessions := map[string]*mcp.ClientSession{}
	for _, vs := range []string{"composed", "plain", "globbed"} {
		sessions[vs] = connect(t, "streamable-http", g.url(vs), "", nil)
	}
	hidden := []struct{ vs, tool, why string }{
		{"composed", "add_tool", "matched by alpha's add* but excluded; beta excludes a*"},
		{"composed", "slow", "outside alpha's include list, excluded from beta"},
		{"composed", "ask_llm", "outside alpha's include list, excluded from beta by glob"},
		{"composed", "nonexistent", "served by nobody"},
		{"composed", "extra", "not served yet"},
		{"plain", "say", "a rename in another virtual server"},
		{"globbed", "echo", "outside the a* glob"},
		{"globbed", "env", "outside the a* glob"},
	}
	for _, h := range hidden {
		_, err := sessions[h.vs].CallTool(ctxT(t), &mcp.CallToolParams{Name: h.tool, Arguments: map[string]any{"text": "x", "millis": 1}})
		var werr *jsonrpc.Error
		switch {
		case err == nil:
			t.Errorf("%s: call %s succeeded (%s)", h.vs, h.tool, h.why)
		case !errors.As(err, &werr):
			t.Errorf("%s: call %s: %v is not a JSON-RPC error", h.vs, h.tool, err)
		case werr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(werr.Message, h.tool):
			t.Errorf("%s: call %s: error %d %q, want %d naming the tool", h.vs, h.tool, werr.Code, werr.Message, jsonrpc.CodeInvalidParams)
		}
	}

	// Calls that do reach each upstream, made after the refused ones: once
	// they show up in the upstreams' output, anything forwarded earlier
	// would have too.
	if _, err := sessions["composed"].CallTool(ctxT(t), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sessions["globbed"].CallTool(ctxT(t), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 1}}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "alpha to record add", func() bool { return slices.Contains(upstreamCalls(alpha.Output(), "alpha"), "add") })
	pollUntil(t, "beta to record add", func() bool { return slices.Contains(upstreamCalls(g.Output(), "beta"), "add") })
	for _, h := range hidden {
		if slices.Contains(upstreamCalls(alpha.Output(), "alpha"), h.tool) {
			t.Errorf("refused call %s reached alpha", h.tool)
		}
		if slices.Contains(upstreamCalls(g.Output(), "beta"), h.tool) {
			t.Errorf("refused call %s reached beta", h.tool)
		}
	}
	if got, want := upstreamCalls(alpha.Output(), "alpha"), []string{"add"}; !slices.Equal(got, want) {
		t.Errorf("alpha received %v, want %v", got, want)
	}
	if got, want := upstreamCalls(g.Output(), "beta"), []string{"add"}; !slices.Equal(got, want) {
		t.Errorf("beta received %v, want %v", got, want)
	}
}

// TestComposeStaticCollision checks that names fixed by the configuration
// (renames, explicit include lists) that collide across selections are
// rejected by `gatehouse check` and `gatehouse serve`, naming the path.
func TestComposeStaticCollision(t *testing.T) {
	t.Parallel()
	const upstreams = `
upstreams:
  - {name: alpha, transport: streamable-http, url: "http://127.0.0.1:9/mcp"}
  - {name: beta, transport: stdio, command: demo-server}
virtual_servers:
`
	for _, tc := range []struct {
		name, vs string
		want     []string
	}{
		{
			name: "renames",
			vs:   `  - {name: v, include: [{upstream: alpha, rename: {echo: say}}, {upstream: beta, rename: {add: say}}]}`,
			want: []string{`virtual_servers[0].include[1].rename.add: name collision: "say" is also exposed by upstream "alpha"`},
		},
		{
			name: "rename onto an included name",
			vs:   `  - {name: v, include: [{upstream: alpha, tools: [echo]}, {upstream: beta, rename: {add: echo}}]}`,
			want: []string{`virtual_servers[0].include[1].rename.add: name collision: "echo" is also exposed by upstream "alpha"`},
		},
		{
			name: "include lists",
			vs:   `  - {name: v, include: [{upstream: alpha, tools: [add, echo]}, {upstream: beta, tools: [echo]}]}`,
			want: []string{`virtual_servers[0].include[1].tools[0]: name collision: "echo" is also exposed by upstream "alpha"`},
		},
		{
			name: "prompt renames",
			vs:   `  - {name: v, include: [{upstream: alpha, rename_prompts: {greet: hi}}, {upstream: beta, rename_prompts: {greet: hi}}]}`,
			want: []string{`virtual_servers[0].include[1].rename_prompts.greet: name collision: "hi" is also exposed by upstream "alpha"`},
		},
		{
			name: "two renames to one name in one selection",
			vs:   `  - {name: v, include: [{upstream: alpha, rename: {echo: say, add: say}}]}`,
			want: []string{`virtual_servers[0].include[0].rename.`, `renames to "say", which`, `is already renamed to`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfigFile(t, "gatehouse.yaml", "data_dir: "+filepath.Join(t.TempDir(), "data")+"\n"+upstreams+tc.vs+"\n")
			for _, cmd := range []string{"check", "serve"} {
				_, stderr, code := runGatehouse(t, cmd, "--config", path)
				if code == 0 {
					t.Errorf("gatehouse %s exited 0, want failure", cmd)
				}
				for _, w := range append([]string{path + ": "}, tc.want...) {
					if !strings.Contains(stderr, w) {
						t.Errorf("gatehouse %s stderr lacks %q:\n%s", cmd, w, stderr)
					}
				}
			}
		})
	}
}

// TestComposeDiscoveredCollision checks that two upstreams exposing the
// same names in one virtual server, with nothing renamed, stop `gatehouse
// serve` at start with every collision named — never a silent suffix.
// `gatehouse check` cannot know what upstreams serve and passes.
func TestComposeDiscoveredCollision(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	dir := t.TempDir()
	path := writeConfigFile(t, "gatehouse.yaml", fmt.Sprintf(`
listen: %s
data_dir: %s
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
  - {name: beta, transport: stdio, command: %q, args: [-transport, stdio, -name, beta]}
virtual_servers:
  - {name: ok, anonymous: true, include: [{upstream: alpha}]}
  - name: clash
    anonymous: true
    include: [{upstream: alpha, rename: {add: plus}}, {upstream: beta, exclude_tools: [add]}]
`, freeAddr(t), filepath.Join(dir, "data"), alphaURL, filepath.Join(binDir, "demo-server")))

	if _, stderr, code := runGatehouse(t, "check", "--config", path); code != 0 {
		t.Fatalf("gatehouse check exited %d; collisions among discovered names are not its to find:\n%s", code, stderr)
	}
	_, out, code := runGatehouse(t, "serve", "--config", path)
	if code == 0 {
		t.Fatalf("gatehouse serve exited 0 despite collisions")
	}
	// The log precedes the error line; only the error line is examined.
	_, stderr, ok := strings.Cut(out, "gatehouse serve: start gateway: ")
	if !ok {
		t.Fatalf("serve stderr has no start error:\n%s", out)
	}
	for _, w := range []string{
		`virtual_servers "clash": tool "echo" is exposed by both upstream "alpha" and upstream "beta"; exclude or rename one`,
		`virtual_servers "clash": tool "slow" is exposed by both upstream "alpha" and upstream "beta"`,
		`virtual_servers "clash": prompt "greet" is exposed by both upstream "alpha" and upstream "beta"`,
		`virtual_servers "clash": resource "demo://readme" is exposed by both upstream "alpha" and upstream "beta"`,
		`virtual_servers "clash": resource template "demo://items/{id}" is exposed by both upstream "alpha" and upstream "beta"`,
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("serve stderr lacks %q", w)
		}
	}
	// add is renamed on one side and excluded on the other: no collision.
	for _, no := range []string{`tool "add"`, `tool "plus"`, `"ok"`, `"beta_`, `_2"`} {
		if strings.Contains(stderr, no) {
			t.Errorf("serve stderr reports %s, which does not collide", no)
		}
	}
	if t.Failed() {
		t.Logf("serve stderr:\n%s", stderr)
	}
}

// TestComposeCollisionAtRunTime has a collision appear while serving: both
// upstreams of a virtual server register "extra" (picked up by globs). The
// gateway reports it (log, /readyz) and extra keeps its route in force:
// it still goes to the upstream that had it first, alpha's is withheld,
// and nothing is suffixed. The collision does not freeze the
// configuration: a reload that leaves it as it is still applies, and one
// that excludes alpha's extra clears it.
func TestComposeCollisionAtRunTime(t *testing.T) {
	t.Parallel()
	alphaURL, alpha := demoHTTP(t, "streamable-http", "alpha")
	cfg := fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
  - {name: beta, transport: stdio, command: %q, args: [-transport, stdio, -name, beta]}
virtual_servers:
  - name: mix
    anonymous: true
    include:
      - {upstream: alpha, tools: ["ext*", add_tool, echo], prompts: [], resources: [], resource_templates: []}
      - {upstream: beta, tools: ["ext*"], prompts: [], resources: [], resource_templates: []}
  - {name: beta-direct, anonymous: true, include: [{upstream: beta}]}
`, alphaURL, filepath.Join(binDir, "demo-server"))
	g := startGateway(t, cfg)
	changed := make(chan struct{}, 16)
	mix := connect(t, "streamable-http", g.url("mix"), "", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(changed) },
	})
	betaDirect := connect(t, "streamable-http", g.url("beta-direct"), "", nil)

	// beta gains extra: mix picks it up.
	if got := callText(t, betaDirect, "add_tool", nil); got != "added" {
		t.Fatalf("beta add_tool = %q", got)
	}
	waitNotified(t, changed, "tools/list_changed for beta's extra")
	if got, want := sortedToolNames(t, mix), []string{"add_tool", "echo", "extra"}; !slices.Equal(got, want) {
		t.Fatalf("mix tools = %v, want %v", got, want)
	}

	// alpha gains extra too: a collision the configuration did not foresee.
	if got := callText(t, mix, "add_tool", nil); got != "added" {
		t.Fatalf("alpha add_tool = %q", got)
	}
	want := `virtual_servers "mix": tool "extra" is exposed by both upstream "alpha" and upstream "beta"; exclude or rename one (upstream "beta" keeps it; the others are withheld)`
	pollUntil(t, "the collision to be logged", func() bool { return lastEntry(g, msgCollision) != nil })
	if e := lastEntry(g, msgCollision); fmt.Sprint(e["collisions"]) != want || e["level"] != "ERROR" {
		t.Errorf("logged %v, want an ERROR with collisions %q", e, want)
	}
	readyCollisions := func() (string, []string) {
		t.Helper()
		_, rd := readyz(t, g)
		var cs []string
		if l, ok := rd["collisions"].([]any); ok {
			for _, c := range l {
				cs = append(cs, fmt.Sprint(c))
			}
		}
		return fmt.Sprint(rd["status"]), cs
	}
	if status, cs := readyCollisions(); status != "degraded" || !slices.Equal(cs, []string{want}) {
		t.Errorf("/readyz = %s with collisions %q, want degraded with %q", status, cs, want)
	}

	checkExtra := func(tools []string) {
		t.Helper()
		if got := sortedToolNames(t, mix); !slices.Equal(got, tools) {
			t.Errorf("mix tools = %v, want %v (no suffixed duplicate)", got, tools)
		}
		betaExtras := func() int {
			return len(slices.DeleteFunc(upstreamCalls(g.Output(), "beta"), func(c string) bool { return c != "extra" }))
		}
		n := betaExtras()
		if got := callText(t, mix, "extra", nil); got != "extra" {
			t.Errorf("extra = %q", got)
		}
		pollUntil(t, "beta to record extra", func() bool { return betaExtras() > n })
		if slices.Contains(upstreamCalls(alpha.Output(), "alpha"), "extra") {
			t.Errorf("extra was routed to alpha; the route in force sends it to beta")
		}
	}
	checkExtra([]string{"add_tool", "echo", "extra"})

	// An administrator's change that leaves the collision as it is still
	// applies: here, hiding add_tool.
	drainCh(changed)
	sighupReload(t, g, strings.Replace(cfg, `tools: ["ext*", add_tool, echo]`, `tools: ["ext*", echo]`, 1), msgReloaded)
	waitNotified(t, changed, "tools/list_changed after the reload")
	checkExtra([]string{"echo", "extra"})
	if status, cs := readyCollisions(); status != "degraded" || !slices.Equal(cs, []string{want}) {
		t.Errorf("/readyz after the reload = %s with collisions %q, want degraded with %q", status, cs, want)
	}

	// One that excludes alpha's extra clears it.
	sighupReload(t, g, strings.Replace(cfg, `tools: ["ext*", add_tool, echo]`, `tools: [echo]`, 1), msgReloaded)
	checkExtra([]string{"echo", "extra"})
	if status, cs := readyCollisions(); status != "ok" || len(cs) > 0 {
		t.Errorf("/readyz once the configuration excludes one = %s with collisions %q, want ok and none", status, cs)
	}
	if n := countMsg(g, msgCollision); n != 1 {
		t.Errorf("the collision was logged %d times, want once", n)
	}
}

// TestConfigErrorsFailFast checks that `gatehouse check` and `gatehouse
// serve` refuse a bad file at once, naming the file, the path (or line)
// and the reason.
func TestConfigErrorsFailFast(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cfg string
		want      []string
	}{
		{
			name: "unknown key",
			cfg: `upstreams:
  - name: a
    transport: stdio
    command: demo-server
    comand: typo
`,
			want: []string{`line 5: unknown key "comand"`},
		},
		{
			name: "unknown top-level key",
			cfg:  "virtual_server: []\n",
			want: []string{`line 1: unknown key "virtual_server"`},
		},
		{
			name: "url without scheme",
			cfg:  "upstreams: [{name: a, transport: streamable-http, url: 127.0.0.1:9/mcp}]\n",
			want: []string{`upstreams[0].url: missing scheme`},
		},
		{
			name: "bad transport",
			cfg:  "upstreams: [{name: a, transport: websocket, url: \"http://127.0.0.1:9/mcp\"}]\n",
			want: []string{`upstreams[0].transport: must be streamable-http, sse or stdio, got "websocket"`},
		},
		{
			name: "unknown upstream in include",
			cfg: `upstreams: [{name: a, transport: stdio, command: demo-server}]
virtual_servers: [{name: v, include: [{upstream: a}, {upstream: nope}]}]
`,
			want: []string{`virtual_servers[0].include[1].upstream: unknown upstream "nope"`},
		},
		{
			name: "bad glob",
			cfg: `upstreams: [{name: a, transport: stdio, command: demo-server}]
virtual_servers: [{name: v, include: [{upstream: a, exclude_tools: ["[oops"]}]}]
`,
			want: []string{`virtual_servers[0].include[0].exclude_tools[0]: bad glob "[oops"`},
		},
		{
			name: "rename of an excluded tool",
			cfg: `upstreams: [{name: a, transport: stdio, command: demo-server}]
virtual_servers: [{name: v, include: [{upstream: a, exclude_tools: [echo], rename: {echo: say}}]}]
`,
			want: []string{`virtual_servers[0].include[0].rename.echo: renames "echo", which is excluded`},
		},
		{
			name: "bad duration",
			cfg: `upstreams:
  - {name: a, transport: stdio, command: demo-server, timeout: 5}
`,
			want: []string{`line 2: invalid duration "5"`},
		},
		{
			name: "every error in one round",
			cfg: `upstreams:
  - {name: a, transport: streamable-http, url: "ftp://x/mcp"}
  - {name: a, transport: stdio}
virtual_servers: [{name: v, include: []}]
`,
			want: []string{
				`upstreams[0].url: scheme must be http or https, got "ftp"`,
				`upstreams[1].name: duplicate name "a"`,
				`upstreams[1].command: required for transport stdio`,
				`virtual_servers[0].include: select at least one upstream`,
			},
		},
		{
			// Found probing: check said ok, and apply --dry-run refused it.
			name: "CEL that does not compile",
			cfg: `upstreams: [{name: a, transport: streamable-http, url: "http://127.0.0.1:9/mcp"}]
virtual_servers: [{name: v, include: [{upstream: a}]}]
grants:
  - {name: g1, subject: {agent: x}, target: {virtual_server: v, tools: ["*"]}, effect: allow, when: "args.x =="}
  - {name: g2, subject: {agent: x}, target: {virtual_server: v, tools: ["*"]}, effect: allow, when: "args.x + 1"}
`,
			want: []string{`grants[0].when: 1:10: Syntax error`, `grants[1].when: must be a bool expression, got int`},
		},
		{
			name: "not YAML",
			cfg:  "upstreams:\n\t- tab\n",
			want: []string{`line 2: found character that cannot start any token`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := writeConfigFile(t, "gatehouse.yaml", tc.cfg+"data_dir: "+filepath.Join(dir, "data")+"\n")
			for _, cmd := range []string{"check", "serve"} {
				_, stderr, code := runGatehouse(t, cmd, "--config", path)
				if code != 1 {
					t.Errorf("gatehouse %s exited %d, want 1", cmd, code)
				}
				for _, w := range append([]string{"gatehouse " + cmd + ": " + path + ": "}, tc.want...) {
					if !strings.Contains(stderr, w) {
						t.Errorf("gatehouse %s stderr lacks %q:\n%s", cmd, w, stderr)
					}
				}
				if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
					t.Errorf("gatehouse %s created the data directory before validating", cmd)
				}
			}
		})
	}
}

// TestReloadLiveSession renames a tool and adds an upstream with SIGHUP
// while an agent session is open: the agent is told the list changed, sees
// and can call the new names, and keeps the same session throughout.
func TestReloadLiveSession(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	demo := filepath.Join(binDir, "demo-server")
	g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: live, anonymous: true, include: [{upstream: alpha, tools: [echo]}]}
`, alphaURL))

	changed := make(chan struct{}, 16)
	cs := connect(t, "streamable-http", g.url("live"), "", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(changed) },
	})
	id := cs.ID()
	if got := sortedToolNames(t, cs); !slices.Equal(got, []string{"echo"}) {
		t.Fatalf("tools/list = %v, want [echo]", got)
	}
	if got := callText(t, cs, "echo", map[string]any{"text": "before"}); got != "[alpha] before" {
		t.Fatalf("echo = %q", got)
	}

	sighupReload(t, g, fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
  - {name: beta, transport: stdio, command: %q, args: [-transport, stdio, -name, beta]}
virtual_servers:
  - name: live
    anonymous: true
    include:
      - {upstream: alpha, tools: [echo], rename: {echo: say}, descriptions: {say: "Say it."}}
      - {upstream: beta, tools: [add], prompts: [], resources: [], resource_templates: []}
`, alphaURL, demo), msgReloaded)
	waitNotified(t, changed, "tools/list_changed after the reload")

	defs := toolDefs(t, cs)
	if got := sortedKeys(defs); !slices.Equal(got, []string{"add", "say"}) {
		t.Errorf("tools/list after reload = %v, want [add say]", got)
	}
	if d := defs["say"]; d == nil || d.Description != "Say it." {
		t.Errorf("say description = %q, want the override", descOf(d))
	}
	if got := callText(t, cs, "say", map[string]any{"text": "after"}); got != "[alpha] after" {
		t.Errorf("say = %q, want [alpha] after", got)
	}
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 20, "b": 22}})
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if sc, _ := res.StructuredContent.(map[string]any); sc["sum"] != 42.0 {
		t.Errorf("add = %v, want sum 42", res.StructuredContent)
	}
	pollUntil(t, "beta (started by the reload) to record add", func() bool {
		return slices.Contains(upstreamCalls(g.Output(), "beta"), "add")
	})
	if _, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err == nil {
		t.Errorf("echo still callable after being renamed to say")
	}

	// Same session: the client never reconnected (MaxRetries -1 would have
	// failed rather than reconnect), and the gateway served the calls
	// after the reload on the session it initialized before.
	if cs.ID() != id || id == "" {
		t.Errorf("session id %q -> %q", id, cs.ID())
	}
	pollUntil(t, "the access log entry of say", func() bool { return requestEntry(g, "live", "tools/call", "say") != nil })
	if got := requestSession(g, "live", "tools/call", "say"); got != id {
		t.Errorf("say was served on session %q, want the original %q", got, id)
	}
	if n := countMsg(g, "gatehouse serving"); n != 1 {
		t.Errorf("gateway started %d times", n)
	}
}

// TestReloadRejectsInvalidConfig sends SIGHUP with a series of bad files:
// each is reported ("reload failed") and the running configuration keeps
// serving, untouched. A collision that only shows once a new upstream
// answers must not leave the new file half-applied either.
func TestReloadRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	alphaURL, _ := demoHTTP(t, "streamable-http", "alpha")
	demo := filepath.Join(binDir, "demo-server")
	good := fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
virtual_servers:
  - {name: live, anonymous: true, include: [{upstream: alpha, tools: [echo, add_tool, "ext*"]}]}
`, alphaURL)
	g := startGateway(t, good)
	changed := make(chan struct{}, 16)
	cs := connect(t, "streamable-http", g.url("live"), "", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(changed) },
	})
	wantTools := []string{"add_tool", "echo"}
	if got := sortedToolNames(t, cs); !slices.Equal(got, wantTools) {
		t.Fatalf("tools/list = %v, want %v", got, wantTools)
	}

	for _, tc := range []struct {
		name, cfg, reason string
	}{
		{"not YAML", "upstreams:\n\t- tab\n", "found character that cannot start any token"},
		{"unknown key", good + "  - {name: x, anonymous: true, include: [{upstream: alpha}], colour: red}\n", `unknown key "colour"`},
		{"url without scheme", strings.Replace(good, "url: \"http://", "url: \"", 1), "upstreams[0].url: missing scheme"},
		{"static collision", good + "  - {name: x, include: [{upstream: alpha, rename: {echo: a, add: a}}]}\n", `renames to "a"`},
		{
			// beta is new: its echo is only known once it answers.
			"collision with a new upstream",
			fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams:
  - {name: alpha, transport: streamable-http, url: %q}
  - {name: beta, transport: stdio, command: %q, args: [-transport, stdio, -name, beta]}
virtual_servers:
  - name: live
    anonymous: true
    include:
      - {upstream: alpha, tools: [echo, add_tool, "ext*"]}
      - {upstream: beta, tools: ["ech?"], prompts: [], resources: [], resource_templates: []}
`, alphaURL, demo),
			`virtual_servers "live": tool "echo" is exposed by both upstream "alpha" and upstream "beta"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drainCh(changed)
			sighupReload(t, g, tc.cfg, msgReloadFailed)
			if e := lastEntry(g, msgReloadFailed); !strings.Contains(fmt.Sprint(e["error"]), tc.reason) || e["level"] != "ERROR" {
				t.Errorf("reload failure logged as %v, want an ERROR whose error contains %q", e, tc.reason)
			}
			if got := callText(t, cs, "echo", map[string]any{"text": "still"}); got != "[alpha] still" {
				t.Errorf("echo = %q, want the running configuration's [alpha] still", got)
			}
			if got := sortedToolNames(t, cs); !slices.Equal(got, wantTools) {
				t.Errorf("tools/list = %v, want the running configuration's %v", got, wantTools)
			}
			select {
			case <-changed:
				t.Errorf("agent told the tool list changed by a rejected reload")
			default:
			}
		})
	}

	// Nothing of the rejected files stays behind: beta is not running, and
	// the running configuration still tracks what alpha serves (a
	// half-applied file would fail to compile on alpha's next change).
	if ups := readyUpstreams(t, g); !slices.Equal(ups, []string{"alpha"}) {
		t.Errorf("/readyz upstreams = %v, want [alpha] only", ups)
	}
	drainCh(changed)
	if got := callText(t, cs, "add_tool", nil); got != "added" {
		t.Fatalf("add_tool = %q", got)
	}
	waitNotified(t, changed, "tools/list_changed for alpha's new tool")
	if got, want := sortedToolNames(t, cs), []string{"add_tool", "echo", "extra"}; !slices.Equal(got, want) {
		t.Errorf("tools/list = %v, want %v", got, want)
	}
	if n := countMsg(g, msgNoCompile); n != 0 {
		t.Errorf("gateway logged %q %d times", msgNoCompile, n)
	}

	// And a good file is still taken.
	sighupReload(t, g, strings.Replace(good, `tools: [echo, add_tool, "ext*"]`, `tools: [echo], rename: {echo: say}`, 1), msgReloaded)
	waitNotified(t, changed, "tools/list_changed after the good reload")
	if got := callText(t, cs, "say", map[string]any{"text": "ok"}); got != "[alpha] ok" {
		t.Errorf("say = %q", got)
	}
}

// TestUpstreamListChanged has an upstream register a tool at run time
// (demo add_tool): agents of a transparent and of a curated virtual server
// (whose glob matches the new tool), over streamable HTTP and legacy SSE,
// are told the list changed, see the new tool, and can call it.
func TestUpstreamListChanged(t *testing.T) {
	t.Parallel()
	demo := filepath.Join(binDir, "demo-server")
	for _, transport := range []string{"streamable-http", "stdio"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			var up string
			var upOut func() string
			if transport == "stdio" {
				up = fmt.Sprintf("{name: dyn, transport: stdio, command: %q, args: [-transport, stdio, -name, dyn]}", demo)
			} else {
				url, p := demoHTTP(t, transport, "dyn")
				up = fmt.Sprintf("{name: dyn, transport: %s, url: %q}", transport, url)
				upOut = p.Output
			}
			g := startGateway(t, fmt.Sprintf(`
listen: LISTEN
log: {level: info}
upstreams: [%s]
virtual_servers:
  - {name: direct, anonymous: true, include: [{upstream: dyn}]}
  - {name: curated, anonymous: true, include: [{upstream: dyn, tools: ["e*"], rename: {echo: say}}]}
`, up))
			if upOut == nil {
				upOut = g.Output // stdio: the upstream's stderr is in the gateway log
			}

			watch := func(ch chan struct{}) *mcp.ClientOptions {
				return &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notifyCh(ch) }}
			}
			directChanged := make(chan struct{}, 16)
			curatedChanged := make(chan struct{}, 16)
			sseChanged := make(chan struct{}, 16)
			direct := connect(t, "streamable-http", g.url("direct"), "", watch(directChanged))
			curated := connect(t, "streamable-http", g.url("curated"), "", watch(curatedChanged))
			sseCurated := connect(t, "sse", g.sseURL("curated"), "", watch(sseChanged))
			if got := sortedToolNames(t, direct); !slices.Equal(got, allDemoTools) {
				t.Fatalf("direct tools = %v", got)
			}
			if got, want := sortedToolNames(t, curated), []string{"echo_header", "env", "say"}; !slices.Equal(got, want) {
				t.Fatalf("curated tools = %v, want %v", got, want)
			}

			if got := callText(t, direct, "add_tool", nil); got != "added" {
				t.Fatalf("add_tool = %q", got)
			}
			waitNotified(t, directChanged, "tools/list_changed on the transparent virtual server")
			waitNotified(t, curatedChanged, "tools/list_changed on the curated virtual server (extra matches e*)")
			waitNotified(t, sseChanged, "tools/list_changed to a legacy SSE agent of the curated virtual server")

			if got, want := sortedToolNames(t, direct), append(slices.Clone(allDemoTools), "extra"); !slices.Equal(got, sortStrings(want)) {
				t.Errorf("direct tools = %v, want %v", got, sortStrings(want))
			}
			for name, cs := range map[string]*mcp.ClientSession{"curated": curated, "sse curated": sseCurated} {
				if got, want := sortedToolNames(t, cs), []string{"echo_header", "env", "extra", "say"}; !slices.Equal(got, want) {
					t.Errorf("%s tools = %v, want %v", name, got, want)
				}
			}
			for name, cs := range map[string]*mcp.ClientSession{"direct": direct, "curated": curated, "sse curated": sseCurated} {
				if got := callText(t, cs, "extra", nil); got != "extra" {
					t.Errorf("%s: extra = %q", name, got)
				}
			}
			pollUntil(t, "the upstream to record the three calls of extra", func() bool {
				n := 0
				for _, c := range upstreamCalls(upOut(), "dyn") {
					if c == "extra" {
						n++
					}
				}
				return n == 3
			})
		})
	}
}

// ---- helpers ----

const (
	msgReloaded     = "configuration reloaded"
	msgReloadFailed = "reload failed; keeping the running configuration"
	msgNoCompile    = "configuration no longer compiles against what upstreams serve; keeping the previous snapshot"
	msgCollision    = "upstreams now serve the same name in a virtual server; the name keeps the route in force, if it had one, and the others are withheld until the configuration excludes or renames one"
)

// runGatehouse runs the gatehouse binary to completion; see runGatehouseEnv.
func runGatehouse(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runGatehouseEnv(t, nil, "", args...)
}

func writeConfigFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sighupReload replaces the gateway's configuration file with cfg (LISTEN and
// data_dir as at start), sends SIGHUP and waits for the log to report
// outcome (msgReloaded or msgReloadFailed).
func sighupReload(t *testing.T, g *gateway, cfg, outcome string) {
	t.Helper()
	old, err := os.ReadFile(g.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = withAllowAll(strings.ReplaceAll(cfg, "LISTEN", g.addr))
	if first, _, _ := strings.Cut(string(old), "\n"); strings.HasPrefix(first, "data_dir:") && !strings.Contains(cfg, "data_dir:") {
		cfg = first + "\n" + cfg
	}
	tmp := g.config + ".new"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, g.config); err != nil {
		t.Fatal(err)
	}
	before := map[string]int{msgReloaded: countMsg(g, msgReloaded), msgReloadFailed: countMsg(g, msgReloadFailed)}
	g.signal(syscall.SIGHUP)
	pollUntil(t, "the gateway to log a reload outcome", func() bool {
		return countMsg(g, msgReloaded) > before[msgReloaded] || countMsg(g, msgReloadFailed) > before[msgReloadFailed]
	})
	if countMsg(g, outcome) == before[outcome] {
		t.Fatalf("reload: want %q, got the other outcome: %v", outcome, lastEntry(g, msgReloadFailed))
	}
}

// logEntries parses the gateway's JSON log.
func logEntries(g *gateway) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(g.Output(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

func countMsg(g *gateway, msg string) int {
	n := 0
	for _, e := range logEntries(g) {
		if e["msg"] == msg {
			n++
		}
	}
	return n
}

func lastEntry(g *gateway, msg string) map[string]any {
	var last map[string]any
	for _, e := range logEntries(g) {
		if e["msg"] == msg {
			last = e
		}
	}
	return last
}

// requestEntry returns the gateway's access-log entry for the last request
// on vs with method and target.
func requestEntry(g *gateway, vs, method, target string) map[string]any {
	var last map[string]any
	for _, e := range logEntries(g) {
		if e["msg"] == "request" && e["vs"] == vs && e["method"] == method && e["target"] == target {
			last = e
		}
	}
	return last
}

func requestUpstream(g *gateway, vs, method, target string) string {
	s, _ := requestEntry(g, vs, method, target)["upstream"].(string)
	return s
}

func requestSession(g *gateway, vs, method, target string) string {
	s, _ := requestEntry(g, vs, method, target)["session"].(string)
	return s
}

// upstreamCalls returns, in order, the tools demo server name was called
// with, read from out: the demo server's own output (HTTP upstreams) or the
// gateway's log, which relays a stdio upstream's stderr line by line.
func upstreamCalls(out, name string) []string {
	prefix := "demo-server " + name + ": tools/call "
	var calls []string
	for _, line := range strings.Split(out, "\n") {
		var e struct{ Msg, Line string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "upstream stderr" {
			line = e.Line
		}
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			calls = append(calls, strings.TrimSpace(rest))
		}
	}
	return calls
}

// readyUpstreams returns the upstream names /readyz reports.
func readyUpstreams(t *testing.T, g *gateway) []string {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rd struct {
		Upstreams map[string]json.RawMessage `json:"upstreams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatal(err)
	}
	return sortedKeys(rd.Upstreams)
}

func toolDefs(t *testing.T, cs *mcp.ClientSession) map[string]*mcp.Tool {
	t.Helper()
	defs := map[string]*mcp.Tool{}
	for tool, err := range cs.Tools(ctxT(t), nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		if defs[tool.Name] != nil {
			t.Errorf("tools/list lists %q twice", tool.Name)
		}
		defs[tool.Name] = tool
	}
	return defs
}

func sortedToolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	return sortStrings(toolNames(t, cs))
}

func descOf(t *mcp.Tool) string {
	if t == nil {
		return "<missing>"
	}
	return t.Description
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortStrings(keys)
}

func sortStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func notifyCh(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func drainCh(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func waitNotified(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s", what)
	}
}

// pollUntil polls cond until it holds or 15s pass.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuditFsyncIntervalFlag: a non-positive fsync interval is a usage
// error, named, before anything starts.
func TestAuditFsyncIntervalFlag(t *testing.T) {
	dir := t.TempDir()
	path := writeConfigFile(t, "gatehouse.yaml", fmt.Sprintf("listen: %s\ndata_dir: %s\n", freeAddr(t), filepath.Join(dir, "data")))
	_, stderr, code := runGatehouse(t, "serve", "--config", path, "--audit-fsync-interval", "0s")
	if code != 2 || !strings.Contains(stderr, "--audit-fsync-interval must be positive") {
		t.Errorf("serve --audit-fsync-interval 0s: exit %d, stderr:\n%s", code, stderr)
	}
}
