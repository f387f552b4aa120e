package graph_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// applyDoc is a document with every kind of entity applyConfig stores, and
// process settings that it ignores.
const applyDoc = `
listen: 0.0.0.0:9999
log: {level: debug}
upstreams:
  - name: everything
    transport: streamable-http
    url: http://127.0.0.1:18080/mcp
    headers: {X-Team: platform}
  - name: memory
    transport: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-memory"]
virtual_servers:
  - name: ops
    description: Operations tools
    include:
      - upstream: everything
        tools: [echo, "get_*"]
        exclude_tools: []
        rename: {echo: say}
      - {upstream: memory}
agents:
  - name: ci-bot
    team: platform
    roles: [deployer]
    labels: {env: prod}
    api_keys:
      - {sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
      - {sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752, expires: 2027-01-01T00:00:00Z}
`

type applyOut struct {
	Applied  bool
	Revision int64
	Changes  []struct {
		Kind, Name, Op string
		Fields         []string
	}
}

func (a applyOut) strings() []string {
	var s []string
	for _, c := range a.Changes {
		line := c.Kind + " " + c.Name + " " + c.Op
		if len(c.Fields) > 0 {
			line += " (" + strings.Join(c.Fields, ", ") + ")"
		}
		s = append(s, line)
	}
	slices.Sort(s)
	return s
}

const applyQuery = `mutation($doc: String!, $prune: Boolean, $dryRun: Boolean) {
	applyConfig(document: $doc, prune: $prune, dryRun: $dryRun) { applied revision changes { kind name op fields } } }`

func (e *env) apply(doc string, prune, dryRun bool) applyOut {
	e.t.Helper()
	var out struct{ ApplyConfig applyOut }
	e.must(applyQuery, map[string]any{"doc": doc, "prune": prune, "dryRun": dryRun}, &out)
	return out.ApplyConfig
}

func (e *env) export() string {
	e.t.Helper()
	var out struct{ ExportConfig string }
	e.must(`{ exportConfig }`, nil, &out)
	return out.ExportConfig
}

// TestApplyExportConfig applies a document through applyConfig, exports it
// back, and checks the round trip (export, then a dry-run apply of it,
// changes nothing), dry runs, prune, the revision and the change log.
func TestApplyExportConfig(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		ctx := context.Background()
		rev0, _ := store.Revision(ctx, e.client)

		// A dry run plans everything and stores nothing.
		dry := e.apply(applyDoc, false, true)
		if dry.Applied || len(dry.Changes) != 8 || dry.Revision != rev0 {
			t.Errorf("dry run: applied %v, revision %d (was %d), changes %q", dry.Applied, dry.Revision, rev0, dry.strings())
		}
		if n := e.client.Upstream.Query().CountX(ctx); n != 0 {
			t.Errorf("the dry run stored %d upstreams", n)
		}

		res := e.apply(applyDoc, false, false)
		want := []string{
			"agent ci-bot created",
			"api_key ci-bot/60303ae2 created",
			"api_key ci-bot/9f86d081 created",
			"role deployer created",
			"team platform created",
			"upstream everything created",
			"upstream memory created",
			"virtual_server ops created",
		}
		if !res.Applied {
			t.Error("apply: applied false")
		}
		if got := res.strings(); !slices.Equal(got, want) {
			t.Errorf("changes:\ngot  %q\nwant %q", got, want)
		}
		if rev, _ := store.Revision(ctx, e.client); res.Revision != rev || rev <= rev0 {
			t.Errorf("revision %d, store says %d (was %d)", res.Revision, rev, rev0)
		}
		if n := len(e.changes(map[string]any{"actor": "token:root", "entityTypeIn": []string{"Upstream", "VirtualServer", "Selection", "Agent", "APIKey", "Team", "Role"}})); n != 10 {
			t.Errorf("%d change log entries by token:root, want 10 (with 2 selections)", n)
		}

		// The export is the document, without process settings.
		out := e.export()
		for _, absent := range []string{"listen", "log", "data_dir", "limits", "http"} {
			if strings.Contains("\n"+out, "\n"+absent+":") {
				t.Errorf("export contains %q:\n%s", absent, out)
			}
		}
		doc, err := config.Parse([]byte(out))
		if err != nil {
			t.Fatalf("export does not parse: %v\n%s", err, out)
		}
		if len(doc.Upstreams) != 2 || len(doc.VirtualServers) != 1 || len(doc.Agents) != 1 || len(doc.Agents[0].APIKeys) != 2 ||
			doc.VirtualServers[0].Include[0].ExcludeTools == nil {
			t.Errorf("export reads back as %+v", doc)
		}

		// Round trip: export, then apply it (dry run, with prune) changes nothing.
		rt := e.apply(out, true, true)
		if rt.Applied || len(rt.Changes) != 0 || rt.Revision != res.Revision {
			t.Errorf("export | apply --dry-run --prune: %+v", rt)
		}
		// Applying it for real changes nothing either, and leaves the revision.
		if again := e.apply(out, true, false); again.Applied || len(again.Changes) != 0 || again.Revision != res.Revision {
			t.Errorf("second apply: %+v", again)
		}

		// A smaller document: without prune, what it lacks stays; an
		// update names its fields.
		smaller := `
upstreams:
  - {name: everything, transport: streamable-http, url: "http://127.0.0.1:18081/mcp", timeout: 30s}
virtual_servers:
  - {name: ops, include: [{upstream: everything}]}
`
		if got := e.apply(smaller, false, false).strings(); !slices.Equal(got, []string{
			"upstream everything updated (url, headers, timeout)",
			"virtual_server ops updated (description, include)",
		}) {
			t.Errorf("apply without prune: %q", got)
		}
		if n := e.client.Upstream.Query().CountX(ctx); n != 2 {
			t.Errorf("%d upstreams after an apply without prune, want 2", n)
		}
		// With prune it goes: dry run first, then for real.
		wantPrune := []string{"agent ci-bot deleted", "upstream memory deleted"}
		if got := e.apply(smaller, true, true).strings(); !slices.Equal(got, wantPrune) {
			t.Errorf("prune dry run: %q", got)
		}
		if n := e.client.Upstream.Query().CountX(ctx); n != 2 {
			t.Errorf("the prune dry run deleted upstreams: %d left", n)
		}
		if got := e.apply(smaller, true, false).strings(); !slices.Equal(got, wantPrune) {
			t.Errorf("prune: %q", got)
		}
		if n := e.client.Upstream.Query().CountX(ctx); n != 1 {
			t.Errorf("%d upstreams after prune, want 1", n)
		}
	})
}

// TestApplyConfigRejects checks that invalid documents fail with INVALID
// errors carrying their path in the document, and store nothing.
func TestApplyConfigRejects(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		for _, tc := range []struct {
			name, doc string
			paths     []string // extensions.path of each error, in order
			msg       string   // in the first message
		}{
			{"validation", "upstreams:\n  - {name: a, transport: sse, url: 127.0.0.1:9/sse}\n  - {name: b, transport: stdio}\n",
				[]string{"upstreams[0].url", "upstreams[1].command"}, "missing scheme"},
			{"unknown key", "upstreams:\n  - {name: a, transport: stdio, command: x, argz: []}\n", []string{""}, `unknown key "argz"`},
			{"not YAML", "upstreams: [", []string{""}, "document:"},
			{"env key", "agents:\n  - {name: a, api_keys: [{sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}, {env: KEY}]}\n",
				[]string{"agents[0].api_keys[1]"}, "must be resolved into sha256"},
			{"file key", "agents:\n  - {name: a, api_keys: [{file: /run/key}]}\n", []string{"agents[0].api_keys[0]"}, "must be resolved"},
			{"bad process setting", "listen: nowhere\nupstreams:\n  - {name: a, transport: stdio, command: x}\n", []string{"listen"}, "host:port"},
			{"secret binding", "upstreams:\n  - {name: a, transport: stdio, command: x}\nsecret_bindings:\n" +
				"  - {name: s, upstream: a, source: kv, path: secret/x, key: k, injection: header, target: Authorization, template: 'Bearer {{.Value'}\n",
				[]string{"secret_bindings[0].injection", "secret_bindings[0].template"}, "injection header needs an HTTP upstream"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := e.sub(t)
				_, resp := e.post(e.admin, applyQuery, map[string]any{"doc": tc.doc})
				if len(resp.Errors) != len(tc.paths) {
					t.Fatalf("errors %+v, want %d", resp.Errors, len(tc.paths))
				}
				for i, p := range tc.paths {
					x := resp.Errors[i].Extensions
					got, _ := x["path"].(string)
					if x["code"] != "INVALID" || x["field"] != "document" || got != p {
						t.Errorf("error %d: %+v, want INVALID at %q", i, resp.Errors[i], p)
					}
				}
				if !strings.Contains(resp.Errors[0].Message, tc.msg) {
					t.Errorf("message %q lacks %q", resp.Errors[0].Message, tc.msg)
				}
				if string(resp.Data) != "null" {
					t.Errorf("data %s", resp.Data)
				}
			})
		}
		if n := e.client.Upstream.Query().CountX(context.Background()) + e.client.Agent.Query().CountX(context.Background()); n != 0 {
			t.Errorf("rejected documents stored %d entities", n)
		}
	})
}

// TestApplyFragment: a document merged into the store (no prune) may
// refer to the store's upstreams and virtual servers: a file of rate
// limits, say (found probing: it was refused as an unknown virtual
// server). With prune the document must stand alone, and a reference to
// neither is still refused.
func TestApplyFragment(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		e.apply("upstreams:\n  - {name: up, transport: stdio, command: x}\nvirtual_servers:\n  - {name: vs, include: [{upstream: up}]}\n", false, false)
		frag := "rate_limits:\n  - {name: rl, scope: {virtual_server: vs}, requests: 5, per: 1m}\n" +
			"virtual_servers:\n  - {name: vs2, include: [{upstream: up}]}\n"
		if got := e.apply(frag, false, false).strings(); !slices.Equal(got, []string{"rate_limit rl created", "virtual_server vs2 created"}) {
			t.Errorf("fragment applied: %v", got)
		}
		for _, tc := range []struct {
			doc   string
			prune bool
			path  string
		}{
			{frag, true, "rate_limits[0].scope.virtual_server"},
			{"rate_limits:\n  - {name: rl2, scope: {virtual_server: nope}, requests: 5, per: 1m}\n", false, "rate_limits[0].scope.virtual_server"},
			{"virtual_servers:\n  - {name: vs3, include: [{upstream: nope}]}\n", false, "virtual_servers[0].include[0].upstream"},
		} {
			_, resp := e.post(e.admin, applyQuery, map[string]any{"doc": tc.doc, "prune": tc.prune})
			if len(resp.Errors) == 0 || !slices.ContainsFunc(resp.Errors, func(e gqlError) bool {
				return e.Extensions["path"] == tc.path && e.Extensions["code"] == "INVALID" && strings.Contains(e.Message, "unknown")
			}) {
				t.Errorf("prune %v, %q: %+v, want INVALID at %s", tc.prune, tc.doc, resp.Errors, tc.path)
			}
		}
	})
}

// TestExportConfigEmpty checks the export of an empty store.
func TestExportConfigEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	out := e.export()
	doc, err := config.Parse([]byte(out))
	if err != nil || len(doc.Upstreams) != 0 {
		t.Errorf("empty export %q: %v", out, err)
	}
	if res := e.apply(out, true, true); len(res.Changes) != 0 {
		t.Errorf("applying an empty export plans %+v", res)
	}
}

// secretsDoc has secret bindings of both sources on an HTTP and a stdio
// upstream.
const secretsDoc = `
upstreams:
  - {name: web, transport: streamable-http, url: "http://127.0.0.1:18080/mcp"}
  - {name: proc, transport: stdio, command: x}
secret_bindings:
  - {name: gh, upstream: web, tools: ["create_*"], source: kv, path: "secret/agents/{{.agent}}/github", key: token,
     injection: header, target: Authorization, template: "Bearer {{.Value}}", per_principal: true}
  - {name: db, upstream: proc, tools: [], source: dynamic, path: database, role: readonly, lease_scope: session,
     injection: env, target: DATABASE_URL, template: "postgresql://{{.username}}:{{.password}}@db/app"}
`

// TestApplyExportSecretBindings applies secret bindings through
// applyConfig, reads them back through the API and exportConfig, checks the
// round trip, pruning, and that an upstream's transport cannot change under
// its bindings.
func TestApplyExportSecretBindings(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		res := e.apply(secretsDoc, false, false)
		if got, want := res.strings(), []string{
			"secret_binding db created", "secret_binding gh created", "upstream proc created", "upstream web created",
		}; !slices.Equal(got, want) {
			t.Errorf("changes:\ngot  %q\nwant %q", got, want)
		}
		var q struct {
			SecretBindings struct {
				Edges []struct {
					Node struct {
						Name, Source, Path, Injection, Target, Template, LeaseScope string
						Tools                                                       []string
						PerPrincipal                                                bool
						Upstream                                                    struct{ Name string }
					}
				}
			}
		}
		e.must(`{ secretBindings(orderBy: {field: NAME}) { edges { node { name source path injection target template leaseScope tools perPrincipal upstream { name } } } } }`, nil, &q)
		if n := q.SecretBindings.Edges; len(n) != 2 || n[0].Node.Name != "db" || n[0].Node.LeaseScope != "session" || n[0].Node.Upstream.Name != "proc" ||
			n[0].Node.Tools == nil || n[1].Node.LeaseScope != "call" || !n[1].Node.PerPrincipal || n[1].Node.Template != "Bearer {{.Value}}" {
			t.Errorf("secret bindings %+v", n)
		}

		out := e.export()
		doc, err := config.Parse([]byte(out))
		if err != nil {
			t.Fatalf("export does not parse: %v\n%s", err, out)
		}
		if len(doc.SecretBindings) != 2 || strings.Contains(out, "lease_scope: call") || !strings.Contains(out, "lease_scope: session") {
			t.Errorf("export:\n%s", out)
		}
		if rt := e.apply(out, true, true); len(rt.Changes) != 0 {
			t.Errorf("export | apply --dry-run --prune: %q", rt.strings())
		}

		// An upstream whose bindings its new transport cannot take keeps
		// its transport.
		var ups struct {
			Upstreams struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		e.must(`{ upstreams(where: {name: "proc"}) { edges { node { id } } } }`, nil, &ups)
		errs := e.fails(`mutation($id: ID!) { updateUpstream(id: $id, input: {transport: sse, url: "http://127.0.0.1:9/sse", clearCommand: true}) { id } }`,
			map[string]any{"id": ups.Upstreams.Edges[0].Node.ID})
		if len(errs) != 1 || errs[0].Extensions["field"] != "input.transport" || errs[0].Extensions["code"] != "INVALID" ||
			!strings.Contains(errs[0].Message, `secret binding "db": injection env needs a stdio upstream`) {
			t.Errorf("changing the transport under an env binding: %+v", errs)
		}

		// Pruning lists the bindings it deletes.
		if got := e.apply("upstreams:\n  - {name: web, transport: streamable-http, url: \"http://127.0.0.1:18080/mcp\"}\n", true, false).strings(); !slices.Equal(got, []string{
			"secret_binding db deleted", "secret_binding gh deleted", "upstream proc deleted",
		}) {
			t.Errorf("prune: %q", got)
		}
	})
}
