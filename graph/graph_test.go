package graph_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gqlclient "github.com/99designs/gqlgen/client"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// env is one admin API over a fresh store, with an admin token of each role.
type env struct {
	t      *testing.T
	client *ent.Client
	url    string // of the store
	h      http.Handler

	admin    string // token with the admin role
	viewer   string // token with the viewer role only
	approver string // token with the approver role only
	auditor  string // token with the auditor role only
}

// newEnv returns an admin API over a fresh SQLite store.
func newEnv(t *testing.T, opts *graph.HandlerOptions) *env {
	t.Helper()
	return newEnvAt(t, "sqlite://"+filepath.Join(t.TempDir(), "gatehouse.db"), opts)
}

// newEnvAt is [newEnv] on the store at url.
func newEnvAt(t *testing.T, url string, opts *graph.HandlerOptions) *env {
	t.Helper()
	if opts == nil {
		opts = new(graph.HandlerOptions)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e := &env{t: t, client: c, url: url, h: graph.NewHandler(c, opts)}
	for _, tok := range []struct {
		name, role string
		token      *string
	}{
		{"root", "admin", &e.admin},
		{"looker", "viewer", &e.viewer},
		{"decider", "approver", &e.approver},
		{"inspector", "auditor", &e.auditor},
	} {
		*tok.token, _, err = store.CreateAdminToken(context.Background(), c, tok.name, []string{tok.role}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// rawDB opens the store's database directly, bypassing Ent.
func (e *env) rawDB() *sql.DB {
	e.t.Helper()
	driver, dsn := "pgx", e.url
	if path, ok := strings.CutPrefix(e.url, "sqlite://"); ok {
		driver, dsn = "sqlite", "file:"+path+"?mode=ro"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// post sends one GraphQL request with token and returns the HTTP status and
// the decoded response.
func (e *env) post(token, query string, vars map[string]any) (int, gqlResponse) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/admin/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	var resp gqlResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		e.t.Fatalf("decode response %q: %v", w.Body.String(), err)
	}
	return w.Code, resp
}

// must runs query as admin, fails on any error, and decodes data into out.
func (e *env) must(query string, vars map[string]any, out any) {
	e.t.Helper()
	_, resp := e.post(e.admin, query, vars)
	if len(resp.Errors) > 0 {
		e.t.Fatalf("query failed: %+v\n%s", resp.Errors, query)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Data, out); err != nil {
			e.t.Fatalf("decode data %s: %v", resp.Data, err)
		}
	}
}

// fails runs query as admin and returns its errors, failing if there are none.
func (e *env) fails(query string, vars map[string]any) []gqlError {
	e.t.Helper()
	_, resp := e.post(e.admin, query, vars)
	if len(resp.Errors) == 0 {
		e.t.Fatalf("query succeeded, want errors: %s\n%s", resp.Data, query)
	}
	return resp.Errors
}

const createUpstream = `mutation($in: CreateUpstreamInput!) { createUpstream(input: $in) { id name transport url createdBy updatedBy } }`

type upstreamOut struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Transport string `json:"transport"`
	URL       string `json:"url"`
	CreatedBy string `json:"createdBy"`
	UpdatedBy string `json:"updatedBy"`
	Disabled  bool   `json:"disabled"`
}

func (e *env) createUpstream(name, transport, url string) upstreamOut {
	e.t.Helper()
	in := map[string]any{"name": name, "transport": transport}
	if transport == "stdio" {
		in["command"] = "server-" + name
	} else {
		in["url"] = url
	}
	var out struct{ CreateUpstream upstreamOut }
	e.must(createUpstream, map[string]any{"in": in}, &out)
	return out.CreateUpstream
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Hour)
	eachBackend(t, nil, func(t *testing.T, e *env) {
		expired, _, err := store.CreateAdminToken(context.Background(), e.client, "old", []string{"admin"}, &past)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, token string
		}{
			{"no token", ""},
			{"unknown token", store.NewAdminToken()},
			{"expired token", expired},
			{"agent-style key", identity.NewAPIKey()},
		} {
			status, resp := e.post(tc.token, `{ me { name } }`, nil)
			if status != http.StatusUnauthorized || len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "UNAUTHENTICATED" {
				t.Errorf("%s: status %d, errors %+v; want 401 UNAUTHENTICATED", tc.name, status, resp.Errors)
			}
		}

		var me struct{ Me struct{ Name string } }
		e.must(`{ me { name roles } }`, nil, &me)
		if me.Me.Name != "root" {
			t.Errorf("me = %+v", me)
		}
		// A viewer reads but does not write.
		if status, resp := e.post(e.viewer, `{ upstreams { totalCount } }`, nil); status != 200 || len(resp.Errors) > 0 {
			t.Errorf("viewer query: %d %+v", status, resp.Errors)
		}
		_, resp := e.post(e.viewer, `mutation { createTeam(input: {name: "t"}) { id } }`, nil)
		if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("viewer mutation: %+v, want FORBIDDEN", resp.Errors)
		}
		if n := e.client.Team.Query().CountX(context.Background()); n != 0 {
			t.Errorf("forbidden mutation stored %d teams", n)
		}

		// Non-browser GETs are refused: only POST carries GraphQL.
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/admin/graphql?query={me{name}}", nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
			t.Errorf("GET without text/html: %d %q", w.Code, w.Header().Get("Allow"))
		}
	})
}

// TestListPaginateFilterOrder creates upstreams and pages through them
// with first/after, filters with where and orders with orderBy, using
// gqlgen's in-process client.
func TestListPaginateFilterOrder(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		for _, u := range []struct{ name, transport string }{
			{"delta", "stdio"}, {"alpha", "streamable_http"}, {"echo", "sse"}, {"charlie", "stdio"}, {"bravo", "streamable_http"},
		} {
			got := e.createUpstream(u.name, u.transport, "http://127.0.0.1:9/"+u.name)
			if got.Transport != u.transport || got.CreatedBy != "token:root" || got.UpdatedBy != "token:root" {
				t.Errorf("created %+v", got)
			}
		}
		c := gqlclient.New(e.h, gqlclient.AddHeader("Authorization", "Bearer "+e.admin))
		type page struct {
			Upstreams struct {
				TotalCount int
				Edges      []struct{ Node struct{ Name string } }
				PageInfo   struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		const q = `query($first: Int, $after: Cursor, $where: UpstreamWhereInput, $order: [UpstreamOrder!]) {
		upstreams(first: $first, after: $after, where: $where, orderBy: $order) {
			totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }`
		names := func(p page) string {
			var n []string
			for _, e := range p.Upstreams.Edges {
				n = append(n, e.Node.Name)
			}
			return strings.Join(n, ",")
		}
		byName := []map[string]any{{"field": "NAME"}}
		var all []string
		var after *string
		for i := 0; ; i++ {
			var p page
			if err := c.Post(q, &p, gqlclient.Var("first", 2), gqlclient.Var("after", after), gqlclient.Var("order", byName)); err != nil {
				t.Fatal(err)
			}
			if p.Upstreams.TotalCount != 5 {
				t.Errorf("totalCount %d, want 5", p.Upstreams.TotalCount)
			}
			all = append(all, names(p))
			if !p.Upstreams.PageInfo.HasNextPage {
				break
			}
			after = p.Upstreams.PageInfo.EndCursor
			if i > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if got := strings.Join(all, "|"); got != "alpha,bravo|charlie,delta|echo" {
			t.Errorf("pages %q", got)
		}

		for _, tc := range []struct {
			name  string
			where map[string]any
			order []map[string]any
			want  string
		}{
			{"transport", map[string]any{"transport": "stdio"}, byName, "charlie,delta"},
			{"name prefix or", map[string]any{"or": []any{map[string]any{"nameHasPrefix": "e"}, map[string]any{"nameIn": []string{"alpha"}}}}, byName, "alpha,echo"},
			{"descending", nil, []map[string]any{{"field": "NAME", "direction": "DESC"}}, "echo,delta,charlie,bravo,alpha"},
			{"two keys", map[string]any{"transportNEQ": "sse"}, []map[string]any{{"field": "TRANSPORT"}, {"field": "NAME", "direction": "DESC"}}, "delta,charlie,bravo,alpha"},
		} {
			var p page
			if err := c.Post(q, &p, gqlclient.Var("where", tc.where), gqlclient.Var("order", tc.order)); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := names(p); got != tc.want {
				t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
			}
		}
	})
}

// TestPageBound: a connection queried without first or last returns one
// page of MaxPage nodes, not the whole table, and says more follow; first
// or last above MaxPage is refused, naming the argument.
func TestPageBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &graph.HandlerOptions{MaxPage: 3, ComplexityLimit: -1})
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		e.createUpstream(n, "stdio", "")
	}
	var p struct {
		Upstreams struct {
			TotalCount int
			Edges      []struct{ Node struct{ Name string } }
			PageInfo   struct {
				HasNextPage bool
				EndCursor   string
			}
		}
	}
	const q = `query($after: Cursor) { upstreams(after: $after, orderBy: {field: NAME}) {
	totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }`
	e.must(q, nil, &p)
	if u := p.Upstreams; len(u.Edges) != 3 || u.TotalCount != 5 || !u.PageInfo.HasNextPage {
		t.Fatalf("first page without first: %d nodes of %d, hasNextPage %v; want 3 of 5, true", len(u.Edges), u.TotalCount, u.PageInfo.HasNextPage)
	}
	e.must(q, map[string]any{"after": p.Upstreams.PageInfo.EndCursor}, &p)
	if u := p.Upstreams; len(u.Edges) != 2 || u.Edges[1].Node.Name != "e" || u.PageInfo.HasNextPage {
		t.Fatalf("second page: %+v", u)
	}
	for _, arg := range []string{"first", "last"} {
		errs := e.fails(`query { upstreams(`+arg+`: 4) { totalCount } }`, nil)
		if errs[0].Extensions["code"] != "INVALID" || errs[0].Extensions["field"] != arg || !strings.Contains(errs[0].Message, "at most 3") {
			t.Errorf("%s: 4: %+v", arg, errs[0])
		}
	}
	e.must(`query { upstreams(last: 3) { totalCount } }`, nil, &p)
}

func TestUpdateDeleteNode(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		u := e.createUpstream("everything", "streamable_http", "http://127.0.0.1:1/mcp")
		var ag struct{ CreateAgent struct{ ID string } }
		e.must(`mutation { createAgent(input: {name: "ci-bot", labels: {env: "prod"}}) { id } }`, nil, &ag)
		if u.ID == ag.CreateAgent.ID {
			t.Fatalf("an upstream and an agent share ID %s", u.ID)
		}

		var upd struct {
			UpdateUpstream struct {
				URL, UpdatedBy string
				Disabled       bool
				Headers        map[string]string
				TimeoutSeconds float64
			}
		}
		e.must(`mutation($id: ID!) { updateUpstream(id: $id, input: {url: "http://127.0.0.1:2/mcp", disabled: true, headers: {X_Team: "a"}, timeoutSeconds: 1.5}) {
		url disabled headers timeoutSeconds updatedBy } }`, map[string]any{"id": u.ID}, &upd)
		if got := upd.UpdateUpstream; got.URL != "http://127.0.0.1:2/mcp" || !got.Disabled || got.Headers["X_Team"] != "a" || got.TimeoutSeconds != 1.5 || got.UpdatedBy != "token:root" {
			t.Errorf("updated %+v", got)
		}

		// node(id) finds each type from the ID alone.
		var nodes struct {
			U struct{ Typename, Name string } `json:"u"`
			A struct {
				Typename string `json:"__typename"`
				Name     string
				Labels   map[string]string
			} `json:"a"`
		}
		e.must(`query($u: ID!, $a: ID!) {
		u: node(id: $u) { __typename ... on Upstream { name } }
		a: node(id: $a) { __typename ... on Agent { name labels } } }`, map[string]any{"u": u.ID, "a": ag.CreateAgent.ID}, &nodes)
		if nodes.U.Name != "everything" || nodes.A.Typename != "Agent" || nodes.A.Labels["env"] != "prod" {
			t.Errorf("nodes %+v", nodes)
		}

		var del struct{ DeleteUpstream string }
		e.must(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": u.ID}, &del)
		if del.DeleteUpstream != u.ID {
			t.Errorf("deleteUpstream returned %q, want %q", del.DeleteUpstream, u.ID)
		}
		errs := e.fails(`query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": u.ID})
		if errs[0].Extensions["code"] != "NOT_FOUND" {
			t.Errorf("node of a deleted upstream: %+v", errs)
		}
		errs = e.fails(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": u.ID})
		if errs[0].Extensions["code"] != "NOT_FOUND" {
			t.Errorf("second delete: %+v", errs)
		}
	})
}

// TestSelections checks that a virtual server lists its selections by
// position, that an upstream in use cannot be deleted, and that deleting
// the server deletes its selections.
func TestSelections(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		a := e.createUpstream("a", "stdio", "")
		b := e.createUpstream("b", "streamable_http", "http://127.0.0.1:3/mcp")
		var vs struct{ CreateVirtualServer struct{ ID string } }
		e.must(`mutation { createVirtualServer(input: {name: "ops", description: "Operations"}) { id } }`, nil, &vs)
		for _, s := range []struct {
			up  string
			pos int
			say string
		}{{b.ID, 1, "say_b"}, {a.ID, 0, "say_a"}} {
			e.must(`mutation($vs: ID!, $up: ID!, $pos: Int, $say: String!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up, position: $pos, tools: ["echo", "get_*"], excludeTools: [], rename: {echo: $say}}) { id } }`,
				map[string]any{"vs": vs.CreateVirtualServer.ID, "up": s.up, "pos": s.pos, "say": s.say}, nil)
		}
		var got struct {
			VirtualServers struct {
				Edges []struct {
					Node struct {
						Selections []struct {
							Position     int
							Tools        []string
							ExcludeTools []string
							Prompts      []string
							Upstream     struct{ Name string }
						}
					}
				}
			}
		}
		e.must(`{ virtualServers { edges { node { selections { position tools excludeTools prompts upstream { name } } } } } }`, nil, &got)
		sels := got.VirtualServers.Edges[0].Node.Selections
		if len(sels) != 2 || sels[0].Upstream.Name != "a" || sels[1].Upstream.Name != "b" {
			t.Fatalf("selections %+v", sels)
		}
		// null means all, [] means none: both survive the round trip.
		if sels[0].Prompts != nil || sels[0].ExcludeTools == nil || len(sels[0].ExcludeTools) != 0 {
			t.Errorf("lists: prompts %#v excludeTools %#v", sels[0].Prompts, sels[0].ExcludeTools)
		}

		errs := e.fails(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": a.ID})
		if errs[0].Extensions["code"] != "IN_USE" {
			t.Errorf("deleting an upstream in use: %+v", errs)
		}
		e.must(`mutation($id: ID!) { deleteVirtualServer(id: $id) }`, map[string]any{"id": vs.CreateVirtualServer.ID}, nil)
		if n := e.client.Selection.Query().CountX(context.Background()); n != 0 {
			t.Errorf("%d selections left after deleting their virtual server", n)
		}
		e.must(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": a.ID}, nil)
	})
}

// TestValidationErrors checks that invalid input fails with errors naming
// the input field and a code, and stores nothing.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		up := e.createUpstream("taken", "stdio", "")
		var vs struct{ CreateVirtualServer struct{ ID string } }
		e.must(`mutation { createVirtualServer(input: {name: "vs"}) { id } }`, nil, &vs)
		ids := map[string]any{"up": up.ID, "vs": vs.CreateVirtualServer.ID}
		type want struct{ field, code, msg string }
		for _, tc := range []struct {
			name  string
			query string
			want  []want
		}{
			{"bad name", `mutation { createUpstream(input: {name: "a b", transport: stdio, command: "x"}) { id } }`,
				[]want{{"input.name", "INVALID", `name: "a b": use letters`}}},
			{"duplicate name", `mutation { createUpstream(input: {name: "taken", transport: sse, url: "http://x"}) { id } }`,
				[]want{{"input.name", "CONFLICT", "already taken"}}},
			{"empty header name", `mutation($h: StringMap) { createUpstream(input: {name: "h", transport: sse, url: "http://x", headers: $h}) { id } }`,
				[]want{{"input.headers", "INVALID", "empty key"}}},
			{"negative timeout", `mutation { createUpstream(input: {name: "n", transport: sse, timeoutSeconds: -1}) { id } }`,
				[]want{{"input.timeoutSeconds", "INVALID", "timeoutSeconds"}}},
			{"timeout past a day", `mutation { createUpstream(input: {name: "n", transport: sse, url: "http://x", timeoutSeconds: 99999999999}) { id } }`,
				[]want{{"input.timeoutSeconds", "INVALID", "timeoutSeconds"}}},
			{"header name not a token", `mutation($hn: StringMap) { createUpstream(input: {name: "h", transport: sse, url: "http://x", headers: $hn}) { id } }`,
				[]want{{"", "INVALID", `upstreams[0].headers: "bad header" is not a valid HTTP header name`}}},
			{"header value with a line break", `mutation($hv: StringMap) { createUpstream(input: {name: "h", transport: sse, url: "http://x", headers: $hv}) { id } }`,
				[]want{{"", "INVALID", "the value of X-Team has characters an HTTP header cannot carry"}}},
			{"blank command", `mutation { createUpstream(input: {name: "c", transport: stdio, command: "   "}) { id } }`,
				[]want{{"", "INVALID", "upstreams[0].command: required for transport stdio"}}},
			{"env name with =", `mutation($env: StringMap) { createUpstream(input: {name: "c", transport: stdio, command: "x", env: $env}) { id } }`,
				[]want{{"", "INVALID", `"A=B" is not an environment variable name`}}},
			{"priority past 32 bits", `mutation($vs: ID!, $big: Int) { createGrant(input: {subjectKind: team, subject: "qa", virtualServerID: $vs, tools: ["*"], priority: $big}) { id } }`,
				[]want{{"input.priority", "INVALID", "priority"}}},
			{"bad key hash", `mutation($a: ID!) { createAPIKey(input: {keyHash: "abc", agentID: $a}) { id } }`,
				[]want{{"input.keyHash", "INVALID", "64 lowercase hex"}}},
			{"escalate without target", `mutation { createApprovalRule(input: {name: "r", approverGroups: ["sre"], onTimeout: escalate}) { id } }`,
				[]want{{"input.escalateTo", "INVALID", "required when onTimeout is escalate"}}},
			{"quorum zero", `mutation { createApprovalRule(input: {name: "r", approverGroups: ["sre"], quorum: 0}) { id } }`,
				[]want{{"input.quorum", "INVALID", "quorum"}}},
			{"no approvers", `mutation { createApprovalRule(input: {name: "r", approverGroups: []}) { id } }`,
				[]want{{"input.approverGroups", "INVALID", "at least one group"}}},
			{"bad regex", `mutation { createGuardrailRule(input: {name: "g", detector: regex, pattern: "("}) { id } }`,
				[]want{{"input.pattern", "INVALID", "bad regular expression"}}},
			{"admin token expired at birth", `mutation { createAdminToken(input: {name: "x", roles: ["viewer"], expiresAt: "2020-01-01T00:00:00Z"}) { token } }`,
				[]want{{"input.expiresAt", "INVALID", "2020-01-01T00:00:00Z is not in the future"}}},
			{"API key expired at birth", `mutation($a: ID!) { createAPIKey(input: {keyHash: "` + strings.Repeat("a", 64) + `", agentID: $a, expiresAt: "2020-01-01T00:00:00Z"}) { id } }`,
				[]want{{"input.expiresAt", "INVALID", "is not in the future"}}},
			{"short webhook secret", `mutation { createWebhook(input: {name: "w", group: "sre", url: "https://hooks.example/x", secret: "short"}) { id } }`,
				[]want{{"input.secret", "INVALID", "secret: must be at least 16 characters, got 5"}}},
			{"bad admin role", `mutation { createAdminToken(input: {name: "x", roles: ["root"]}) { token } }`,
				[]want{{"input.roles", "INVALID", `unknown role "root"`}}},
			{"kv without key", `mutation($up: ID!) { createSecretBinding(input: {name: "s", upstreamID: $up, source: kv, path: "secret/x", injection: argument, target: "token"}) { id } }`,
				[]want{{"input.key", "INVALID", "required for source kv"}}},
			{"secret template", `mutation($up: ID!) { createSecretBinding(input: {name: "s", upstreamID: $up, source: kv, path: "secret/x", key: "token", injection: argument, target: "token", template: "Bearer {{.Value"}) { id } }`,
				[]want{{"input.template", "INVALID", "template: bad template: line 1: unclosed action"}}},
			{"secret path and lease", `mutation($up: ID!) { createSecretBinding(input: {name: "s", upstreamID: $up, source: kv, path: "secret/{{.agent}}/{{.tool}}", perPrincipal: true, key: "token", leaseScope: session, injection: env, target: "1TOKEN"}) { id } }`,
				[]want{{"input.leaseScope", "INVALID", "leaseScope: applies only to source dynamic"}, {"input.target", "INVALID", "is not an environment variable name"}, {"input.path", "INVALID", "path: refers to {{.tool}}"}}},
			{"secret header into stdio", `mutation($up: ID!) { createSecretBinding(input: {name: "s", upstreamID: $up, source: kv, path: "secret/x", key: "token", injection: header, target: "Authorization"}) { id } }`,
				[]want{{"input.injection", "INVALID", "injection header needs an HTTP upstream, and the upstream runs over stdio"}}},
			{"grant subject", `mutation($vs: ID!) { createGrant(input: {subjectKind: agent, subject: "a b", virtualServerID: $vs, tools: ["*"]}) { id } }`,
				[]want{{"input.subject", "INVALID", "agent name"}}},
			{"grant without target", `mutation($vs: ID!) { createGrant(input: {subjectKind: agent, subject: "*", virtualServerID: $vs}) { id } }`,
				[]want{{"input.tools", "INVALID", "at least one of tools, resources or prompts"}}},
			{"grant when not CEL", `mutation($vs: ID!) { createGrant(input: {subjectKind: team, subject: "qa", virtualServerID: $vs, tools: ["*"], when: "bad("}) { id } }`,
				[]want{{"input.when", "INVALID", "when: 1:4: Syntax error"}}},
			{"grant claim not CEL", `mutation($vs: ID!) { createGrant(input: {subjectKind: claim, subject: "bad(", virtualServerID: $vs, tools: ["*"], when: "bad("}) { id } }`,
				[]want{{"input.when", "INVALID", "1:4: Syntax error (when)"}, {"input.subject", "INVALID", "subject: 1:4: Syntax error (claim)"}}},
			{"size without limit", `mutation { createGuardrailRule(input: {name: "g", detector: size, action: redact}) { id } }`,
				[]want{{"input.maxBytes", "INVALID", "required for detector size"}, {"input.action", "INVALID", "cannot redact"}}},
			{"threshold above 1", `mutation { createGuardrailRule(input: {name: "g", detector: injection, threshold: 1.5}) { id } }`,
				[]want{{"input.threshold", "INVALID", "threshold"}}},
			{"unknown pii kind", `mutation { createGuardrailRule(input: {name: "g", detector: pii, kinds: ["email", "nonsense"]}) { id } }`,
				[]want{{"", "INVALID", `guardrails[0].kinds[1]: unknown pii kind "nonsense" (known: email,`}}},
			{"kinds of a regex", `mutation { createGuardrailRule(input: {name: "g", detector: regex, pattern: "x", kinds: ["email"]}) { id } }`,
				[]want{{"", "INVALID", "guardrails[0].kinds: only secrets, pii and injection detectors have kinds"}}},
			{"empty denylist term", `mutation { createGuardrailRule(input: {name: "g", detector: denylist, terms: ["ok", " "]}) { id } }`,
				[]want{{"", "INVALID", "guardrails[0].terms[1]: empty term"}}},
			{"cel detector", `mutation { createGuardrailRule(input: {name: "g", detector: cel, pattern: "true"}) { id } }`,
				[]want{{"input.detector", "INVALID", "cel is no longer supported"}}},
			{"rate limit of nothing", `mutation { createRateLimit(input: {name: "r", requests: 0, perSeconds: 60}) { id } }`,
				[]want{{"input.requests", "INVALID", "requests"}}},
			{"rate limit kind without subject", `mutation { createRateLimit(input: {name: "r", requests: 1, perSeconds: 60, subjectKind: team}) { id } }`,
				[]want{{"input.subject", "INVALID", "required with subjectKind"}}},
			{"rate limit claim not CEL", `mutation { createRateLimit(input: {name: "r", requests: 1, perSeconds: 60, subjectKind: claim, subject: "bad("}) { id } }`,
				[]want{{"input.subject", "INVALID", "1:4: Syntax error (claim)"}}},
			{"bad glob", `mutation($vs: ID!) { createGrant(input: {subjectKind: role, subject: "ops", virtualServerID: $vs, tools: ["["]}) { id } }`,
				[]want{{"input.tools", "INVALID", "bad glob"}}},
			{"two selection errors at once", `mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up, tools: ["echo"], excludeTools: ["get_*"], rename: {get_x: "x", echo: ""}}) { id } }`,
				[]want{{"input.rename", "INVALID", `echo: new name is empty`}, {"input.rename", "INVALID", `renames "get_x", which tools does not select`}, {"input.rename", "INVALID", `renames "get_x", which exclude_tools excludes`}}},
			{"unknown transport", `mutation { createUpstream(input: {name: "w", transport: websocket}) { id } }`,
				[]want{{"", "GRAPHQL_VALIDATION_FAILED", "websocket"}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				vars := map[string]any{"a": up.ID, "h": map[string]any{"": "v"}, "hn": map[string]any{"bad header": "x"},
					"hv": map[string]any{"X-Team": "a\r\nInjected: 1"}, "env": map[string]any{"A=B": "x"}, "big": int64(1) << 31}
				for k, v := range ids {
					vars[k] = v
				}
				if strings.Contains(tc.query, "$a") {
					var ag struct{ CreateAgent struct{ ID string } }
					e.must(`mutation($n: String!) { createAgent(input: {name: $n}) { id } }`, map[string]any{"n": "agent-" + strings.ReplaceAll(tc.name, " ", "-")}, &ag)
					vars["a"] = ag.CreateAgent.ID
				}
				errs := e.fails(tc.query, pick(tc.query, vars))
				if len(errs) != len(tc.want) {
					t.Fatalf("got %d errors %+v, want %d", len(errs), errs, len(tc.want))
				}
				for i, w := range tc.want {
					g := errs[i]
					if field, _ := g.Extensions["field"].(string); field != w.field || g.Extensions["code"] != w.code || !strings.Contains(g.Message, w.msg) {
						t.Errorf("error %d: %q %v, want field %q code %s message containing %q", i, g.Message, g.Extensions, w.field, w.code, w.msg)
					}
				}
			})
		}
		if n := e.client.Upstream.Query().CountX(context.Background()); n != 1 {
			t.Errorf("%d upstreams stored, want only the first", n)
		}
	})
}

// pick keeps the variables query declares.
func pick(query string, vars map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range vars {
		if strings.Contains(query, "$"+k+":") {
			out[k] = v
		}
	}
	return out
}

var keyRE = regexp.MustCompile(`^gh_[A-Za-z0-9_-]{43}$`)

// TestRotateAgentKey checks that the new key is returned once, in the
// documented format, and that only its hash and prefix are stored.
func TestRotateAgentKey(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		var ag struct{ CreateAgent struct{ ID string } }
		e.must(`mutation { createAgent(input: {name: "ci-bot"}) { id } }`, nil, &ag)
		old := identity.HashKey("gh_old")
		e.must(`mutation($a: ID!, $h: String!) { createAPIKey(input: {agentID: $a, keyHash: $h}) { id } }`, map[string]any{"a": ag.CreateAgent.ID, "h": old}, nil)

		const rotate = `mutation($a: ID!) { rotateAgentKey(agent: $a) { key revokedKeys apiKey { id prefix keyHash revoked createdBy agent { name } } } }`
		type rotated struct {
			RotateAgentKey struct {
				Key         string
				RevokedKeys int
				APIKey      struct {
					ID, Prefix, KeyHash, CreatedBy string
					Revoked                        bool
					Agent                          struct{ Name string }
				}
			}
		}
		var r1, r2 rotated
		e.must(rotate, map[string]any{"a": ag.CreateAgent.ID}, &r1)
		e.must(rotate, map[string]any{"a": ag.CreateAgent.ID}, &r2)
		k := r1.RotateAgentKey
		if !keyRE.MatchString(k.Key) {
			t.Errorf("key %q does not match %s", k.Key, keyRE)
		}
		if k.RevokedKeys != 1 || k.APIKey.Prefix != k.Key[:8] || k.APIKey.KeyHash != identity.HashKey(k.Key) ||
			k.APIKey.Revoked || k.APIKey.Agent.Name != "ci-bot" || k.APIKey.CreatedBy != "token:root" {
			t.Errorf("rotation: %+v", k)
		}
		if r2.RotateAgentKey.Key == k.Key {
			t.Error("two rotations returned the same key")
		}

		// The key is shown once: reading the keys back shows hashes and
		// prefixes, and nothing in the database holds the plaintext.
		_, resp := e.post(e.admin, `{ apiKeys(orderBy: [{field: CREATED_AT}]) { edges { node { prefix keyHash revoked } } } }`, nil)
		if bytes.Contains(resp.Data, []byte(k.Key)) || bytes.Contains(resp.Data, []byte(k.Key[8:])) {
			t.Errorf("key listing contains the plaintext key: %s", resp.Data)
		}
		var active int
		for _, h := range []string{old, k.APIKey.KeyHash, identity.HashKey(r2.RotateAgentKey.Key)} {
			if e.client.APIKey.Query().Where().CountX(context.Background()) == 0 {
				t.Fatal("no keys stored")
			}
			if !strings.Contains(string(resp.Data), h) {
				t.Errorf("listing lacks hash %s", h)
			}
		}
		for _, k := range e.client.APIKey.Query().AllX(context.Background()) {
			if !k.Revoked {
				active++
			}
		}
		if active != 1 {
			t.Errorf("%d active keys after two rotations, want 1", active)
		}
		rows, err := e.rawDB().Query("SELECT key_hash, coalesce(prefix, '') FROM api_keys")
		if err != nil {
			t.Fatal(err)
		}
		var dump strings.Builder
		for rows.Next() {
			var h, p string
			if err := rows.Scan(&h, &p); err != nil {
				t.Fatal(err)
			}
			dump.WriteString(h + " " + p + " ")
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(dump.String(), k.Key) || strings.Contains(dump.String(), k.Key[8:]) {
			t.Error("the database holds the plaintext key")
		}

		errs := e.fails(`mutation { rotateAgentKey(agent: 1) { key } }`, nil)
		if errs[0].Extensions["code"] != "NOT_FOUND" || errs[0].Extensions["field"] != "agent" {
			t.Errorf("rotating for a missing agent: %+v", errs)
		}
	})
}

// TestCreateAdminToken checks that a created token is shown once, works,
// and that the API never exposes token hashes.
func TestCreateAdminToken(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		var out struct {
			CreateAdminToken struct {
				Token      string
				AdminToken struct {
					Prefix string
					Roles  []string
				}
			}
		}
		e.must(`mutation { createAdminToken(input: {name: "auditor-1", roles: ["auditor", "viewer"]}) { token adminToken { prefix roles } } }`, nil, &out)
		tok := out.CreateAdminToken.Token
		if !strings.HasPrefix(tok, "gha_") || len(tok) != 47 || out.CreateAdminToken.AdminToken.Prefix != tok[:8] {
			t.Errorf("created %+v", out.CreateAdminToken)
		}
		var me struct{ Me struct{ Name string } }
		_, resp := e.post(tok, `{ me { name } }`, nil)
		if err := json.Unmarshal(resp.Data, &me); err != nil || me.Me.Name != "auditor-1" {
			t.Errorf("new token: %s %+v", resp.Data, resp.Errors)
		}
		errs := e.fails(`{ adminTokens { edges { node { tokenHash } } } }`, nil)
		if !strings.Contains(errs[0].Message, "tokenHash") {
			t.Errorf("tokenHash is queryable? %+v", errs)
		}

		// The last admin cannot be removed or demoted.
		var list struct {
			AdminTokens struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		e.must(`{ adminTokens(where: {name: "root"}) { edges { node { id } } } }`, nil, &list)
		root := list.AdminTokens.Edges[0].Node.ID
		for _, q := range []string{
			`mutation($id: ID!) { deleteAdminToken(id: $id) }`,
			`mutation($id: ID!) { updateAdminToken(id: $id, input: {roles: ["viewer"]}) { id } }`,
		} {
			if errs := e.fails(q, map[string]any{"id": root}); errs[0].Extensions["code"] != "CONFLICT" {
				t.Errorf("%s: %+v", q, errs)
			}
		}
		if status, _ := e.post(e.admin, `{ me { name } }`, nil); status != 200 {
			t.Errorf("the last admin token stopped working: %d", status)
		}
	})
}

// TestValidateConfig: a mutation that would make the stored configuration
// invalid is refused (nothing is stored) with the document path at fault;
// validateConfig reports a store made invalid outside the API (an older
// version, a hand edit), which mutations may then repair.
func TestValidateConfig(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		e.createUpstream("good", "streamable_http", "http://127.0.0.1:1/mcp")
		for _, in := range []map[string]any{
			{"name": "bad", "transport": "sse", "url": "127.0.0.1:9/sse"},
			{"name": "bad", "transport": "streamable_http", "url": "ftp://127.0.0.1:9/mcp"},
			{"name": "bad", "transport": "stdio"},
		} {
			errs := e.fails(createUpstream, map[string]any{"in": in})
			if errs[0].Extensions["code"] != "INVALID" || errs[0].Extensions["name"] != "bad" || !strings.HasPrefix(fmt.Sprint(errs[0].Extensions["configPath"]), "upstreams[0].") ||
				!strings.Contains(errs[0].Message, "the change would make the configuration invalid, so nothing was changed") {
				t.Errorf("creating upstream %v: %+v, want INVALID at upstreams[0]", in, errs)
			}
		}
		if e.hasUpstream("bad") {
			t.Fatal("a refused upstream was stored")
		}
		errs := e.fails(`mutation { updateUpstream(id: `+e.upstreamID("good")+`, input: {url: "nope"}) { id } }`, nil)
		if errs[0].Extensions["code"] != "INVALID" || errs[0].Extensions["configPath"] != "upstreams[0].url" {
			t.Errorf("breaking an upstream's URL: %+v", errs)
		}

		// Stored outside the API.
		e.client.Upstream.Create().SetName("bad").SetTransport(schematype.TransportSSE).SetURL("127.0.0.1:9/sse").SaveX(context.Background())
		type result struct {
			ValidateConfig struct {
				Valid  bool
				Errors []struct {
					Path, Message string
					Name          *string
				}
			}
		}
		const q = `{ validateConfig { valid errors { path message name } } }`
		var r result
		e.must(q, nil, &r)
		v := r.ValidateConfig
		if v.Valid || len(v.Errors) != 1 {
			t.Fatalf("validateConfig = %+v, want one error", v)
		}
		// Upstreams are exported sorted by name: "bad" is upstreams[0].
		if err := v.Errors[0]; err.Path != "upstreams[0].url" || !strings.Contains(err.Message, "missing scheme") || err.Name == nil || *err.Name != "bad" {
			t.Errorf("error %+v, want upstreams[0].url: missing scheme (bad)", err)
		}
		// Changes that leave the old problem as it is are taken, and so is
		// the fix.
		e.createUpstream("other", "streamable_http", "http://127.0.0.1:2/mcp")
		e.must(`mutation { updateUpstream(id: `+e.upstreamID("bad")+`, input: {url: "http://127.0.0.1:9/sse"}) { id } }`, nil, nil)
		e.must(q, nil, &r)
		if !r.ValidateConfig.Valid || len(r.ValidateConfig.Errors) != 0 {
			t.Errorf("after the fix: %+v", r.ValidateConfig)
		}
	})
}

func (e *env) hasUpstream(name string) bool {
	var out struct {
		Upstreams struct{ TotalCount int }
	}
	e.must(`query($n: String!) { upstreams(where: {name: $n}) { totalCount } }`, map[string]any{"n": name}, &out)
	return out.Upstreams.TotalCount > 0
}

func (e *env) upstreamID(name string) string {
	var out struct {
		Upstreams struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	e.must(`query($n: String!) { upstreams(where: {name: $n}) { edges { node { id } } } }`, map[string]any{"n": name}, &out)
	return out.Upstreams.Edges[0].Node.ID
}

// TestLimits checks the depth and complexity limits and that introspection
// can be switched off.
func TestLimits(t *testing.T) {
	t.Parallel()
	deep := `{ upstreams { edges { node { tools { edges { node { upstream { name } } } } } } } }`
	introspect := `{ __schema { queryType { name } } }`

	e := newEnv(t, &graph.HandlerOptions{DepthLimit: 5, DisableIntrospection: true})
	errs := e.fails(deep, nil)
	if errs[0].Extensions["code"] != "LIMIT_EXCEEDED" || !strings.Contains(errs[0].Message, "limit is 5") {
		t.Errorf("deep query: %+v", errs)
	}
	if errs := e.fails(introspect, nil); !strings.Contains(errs[0].Message, "introspection") {
		t.Errorf("introspection off: %+v", errs)
	}

	// The token limit applies before validation, whose overlapping-fields
	// check is quadratic in a selection set's fields: the largest query
	// within the default limit stays well under a second (logged), one
	// beyond it is refused before any validation.
	e = newEnv(t, nil)
	dup := func(n int) string { return "{ me {" + strings.Repeat(" name", n) + " } }" }
	start := time.Now()
	e.post(e.admin, dup(graph.DefaultTokenLimit-8), nil) // validated, then answered (within the complexity limit)
	t.Logf("%d copies of one field, the most the token limit lets through: validated and answered in %s", graph.DefaultTokenLimit-8, time.Since(start))
	start = time.Now()
	errs = e.fails(dup(200000), nil)
	if !strings.Contains(errs[0].Message, "token limit") {
		t.Errorf("200,000 copies of one field: %+v", errs)
	}
	t.Logf("200,000 copies refused in %s: %s", time.Since(start), errs[0].Message)
	if _, resp := e.post(e.admin, `{ __schema { types { name fields { name args { name type { name ofType { name } } } type { name kind ofType { name kind ofType { name } } } } } } }`, nil); len(resp.Errors) > 0 {
		t.Errorf("an introspection query: %+v", resp.Errors)
	}

	e = newEnv(t, &graph.HandlerOptions{ComplexityLimit: 100})
	errs = e.fails(`{ upstreams(first: 50) { edges { node { name tools(first: 50) { totalCount } } } } }`, nil)
	if !strings.Contains(errs[0].Message, "complexity") {
		t.Errorf("complex query: %+v", errs)
	}
	e.must(`{ upstreams(first: 5) { edges { node { name tools(first: 5) { totalCount } } } } }`, nil, nil)
	// Defaults: introspection on, ordinary queries within limits, a
	// full page of 1,000 nodes; past it the page's own error, not the
	// complexity's; nested connections multiplying are refused.
	e = newEnv(t, nil)
	e.must(introspect, nil, nil)
	e.must(deep, nil, nil)
	e.must(`{ adminChanges(first: 1000) { edges { node { id op actor entityType entityName at } } pageInfo { hasNextPage endCursor } } }`, nil, nil)
	if errs := e.fails(`{ adminChanges(first: 1001) { edges { node { id } } } }`, nil); errs[0].Extensions["code"] != "INVALID" {
		t.Errorf("first: 1001: %+v, want the page's INVALID", errs)
	}
	if errs := e.fails(`{ upstreams(first: 1000) { edges { node { name tools(first: 1000) { edges { node { name } } } } } } }`, nil); !strings.Contains(errs[0].Message, "complexity") {
		t.Errorf("nested connections of 1,000 × 1,000: %+v", errs)
	}
}

// TestPlayground checks that browsers get a self-contained page that loads
// nothing from elsewhere.
func TestPlayground(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	req := httptest.NewRequest(http.MethodGet, "/admin/graphql", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	body := w.Body.String()
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(body, "fetch(window.location.pathname") {
		t.Fatalf("playground: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	for _, external := range []string{"http://", "https://", "//cdn", "src=", "@import"} {
		if strings.Contains(body, external) {
			t.Errorf("page contains %q", external)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}

	e = newEnv(t, &graph.HandlerOptions{DisablePlayground: true})
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("playground off: %d", w.Code)
	}
}

// TestAppendInputs: appendX adds its own values to the list X, after a
// replacement given in the same input (entgql v0.7.0's generated Mutate
// appended the replacement list instead; see ent/template).
func TestAppendInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	up := e.createUpstream("a", "stdio", "")
	var vs struct{ CreateVirtualServer struct{ ID string } }
	e.must(`mutation { createVirtualServer(input: {name: "ops"}) { id } }`, nil, &vs)
	var sel struct{ CreateSelection struct{ ID string } }
	e.must(`mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up, tools: ["echo"], excludeTools: ["delete_*"]}) { id } }`,
		map[string]any{"vs": vs.CreateVirtualServer.ID, "up": up.ID}, &sel)
	for _, tc := range []struct {
		input          string
		tools, exclude []string
	}{
		{`{appendExcludeTools: ["deploy"]}`, []string{"echo"}, []string{"delete_*", "deploy"}},
		{`{appendTools: ["add"]}`, []string{"echo", "add"}, []string{"delete_*", "deploy"}},
		{`{excludeTools: ["a_*"], appendExcludeTools: ["deploy"]}`, []string{"echo", "add"}, []string{"a_*", "deploy"}},
	} {
		var out struct {
			UpdateSelection struct{ Tools, ExcludeTools []string }
		}
		e.must(`mutation($id: ID!) { updateSelection(id: $id, input: `+tc.input+`) { tools excludeTools } }`, map[string]any{"id": sel.CreateSelection.ID}, &out)
		if got := out.UpdateSelection; !slices.Equal(got.Tools, tc.tools) || !slices.Equal(got.ExcludeTools, tc.exclude) {
			t.Errorf("updateSelection %s: tools %v excludeTools %v, want %v %v", tc.input, got.Tools, got.ExcludeTools, tc.tools, tc.exclude)
		}
	}
}

// TestDanglingReference: a create or update naming an ID of no entity (or
// of another type) is NOT_FOUND; deleting an entity others refer to is
// IN_USE. Both were IN_USE.
func TestDanglingReference(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		up := e.createUpstream("a", "stdio", "")
		var vs struct{ CreateVirtualServer struct{ ID string } }
		e.must(`mutation { createVirtualServer(input: {name: "ops"}) { id } }`, nil, &vs)
		for _, q := range []struct {
			query string
			vars  map[string]any
		}{
			{`mutation { createAgent(input: {name: "x1", teamID: "12345"}) { id } }`, nil},
			{`mutation($vs: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $vs}) { id } }`, map[string]any{"vs": vs.CreateVirtualServer.ID}},
		} {
			if errs := e.fails(q.query, q.vars); errs[0].Extensions["code"] != "NOT_FOUND" {
				t.Errorf("%s: %+v, want NOT_FOUND", q.query, errs)
			}
		}
		e.must(`mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up}) { id } }`,
			map[string]any{"vs": vs.CreateVirtualServer.ID, "up": up.ID}, nil)
		if errs := e.fails(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": up.ID}); errs[0].Extensions["code"] != "IN_USE" {
			t.Errorf("deleting an upstream in use: %+v, want IN_USE", errs)
		}

		// A team its agents belong to: the database would clear their team
		// (and what grants reach them through it) without a word.
		var team struct{ CreateTeam struct{ ID string } }
		e.must(`mutation { createTeam(input: {name: "qa"}) { id } }`, nil, &team)
		var ag struct{ CreateAgent struct{ ID string } }
		e.must(`mutation($t: ID!) { createAgent(input: {name: "tester", teamID: $t}) { id } }`, map[string]any{"t": team.CreateTeam.ID}, &ag)
		errs := e.fails(`mutation($id: ID!) { deleteTeam(id: $id) }`, map[string]any{"id": team.CreateTeam.ID})
		if errs[0].Extensions["code"] != "IN_USE" || !strings.Contains(errs[0].Message, "tester") {
			t.Errorf("deleting a team with an agent: %+v, want IN_USE naming the agent", errs)
		}
		e.must(`mutation($id: ID!) { deleteAgent(id: $id) }`, map[string]any{"id": ag.CreateAgent.ID}, nil)
		e.must(`mutation($id: ID!) { deleteTeam(id: $id) }`, map[string]any{"id": team.CreateTeam.ID}, nil)
	})
}

// TestDeleteVirtualServerLogsWhatGoes: a virtual server's selections and
// grants go with it, and the admin change log has an entry for each.
func TestDeleteVirtualServerLogsWhatGoes(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		up := e.createUpstream("a", "stdio", "")
		var vs struct{ CreateVirtualServer struct{ ID string } }
		e.must(`mutation { createVirtualServer(input: {name: "ops"}) { id } }`, nil, &vs)
		ids := map[string]any{"vs": vs.CreateVirtualServer.ID, "up": up.ID}
		e.must(`mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up}) { id } }`, ids, nil)
		e.must(`mutation($vs: ID!) { createGrant(input: {name: "ops-team", virtualServerID: $vs, subjectKind: team, subject: "ops", tools: ["*"]}) { id } }`,
			map[string]any{"vs": vs.CreateVirtualServer.ID}, nil)
		e.must(`mutation($id: ID!) { deleteVirtualServer(id: $id) }`, map[string]any{"id": vs.CreateVirtualServer.ID}, nil)
		for _, typ := range []string{"Grant", "Selection", "VirtualServer"} {
			l := e.changes(map[string]any{"entityType": typ, "op": "delete"})
			if len(l) != 1 || l[0].Before == nil {
				t.Errorf("%s deletes in the change log: %+v", typ, l)
			}
		}
	})
}

// TestMalformedBodies: a body that is not one JSON GraphQL request gets a
// clear error with a code (gqlgen said "internal system error").
func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &graph.HandlerOptions{MaxBodyBytes: 4096})
	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"query":`, http.StatusBadRequest, "not JSON"},
		{`[{"query":"{ me { name } }"}]`, http.StatusBadRequest, "batched requests"},
		{`{"query":"{ me { name } }","variables":[1]}`, http.StatusBadRequest, "variables\\\" must be a JSON object or null"},
		{`{"query":{"text":"{ me { name } }"}}`, http.StatusBadRequest, "must be a string holding the GraphQL document"},
		{`{"variables":{}}`, http.StatusBadRequest, "must be a string holding the GraphQL document"},
		{`42`, http.StatusBadRequest, "not a JSON object"},
		{`{"query":"` + strings.Repeat(" ", 5000) + `{ me { name } }"}`, http.StatusRequestEntityTooLarge, "larger than 4096 bytes"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/admin/graphql", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.admin)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) || !strings.Contains(w.Body.String(), "BAD_REQUEST") {
			t.Errorf("body %.30q: HTTP %d %s, want %d with %q", tc.body, w.Code, w.Body, tc.status, tc.want)
		}
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		req := httptest.NewRequest(http.MethodPost, "/admin/graphql", strings.NewReader(`{"query":"{ me { name } }"}`))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+e.admin)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code != http.StatusUnsupportedMediaType || !strings.Contains(w.Body.String(), "Content-Type: application/json") {
			t.Errorf("Content-Type %q: HTTP %d %s, want 415 naming application/json", ct, w.Code, w.Body)
		}
	}
	e.must(`{ me { name } }`, nil, nil)
}

// TestArgumentErrors: an ID or cursor argument that is not one, and first
// with last, are INVALID naming the argument, not Go's parse errors.
func TestArgumentErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, tc := range []struct{ query, field, msg string }{
		{`mutation { deleteUpstream(id: "zz") }`, "id", `id: "zz" is not an ID of this API`},
		{`{ node(id: "99999999999999999999999") { id } }`, "id", "is not an ID of this API"},
		{`{ upstreams(after: "garbage") { totalCount } }`, "after", "after: not a cursor of this API"},
		{`{ adminChanges(before: "!!!") { totalCount } }`, "before", "before: not a cursor of this API"},
		{`{ upstreams(first: 2, last: 2) { totalCount } }`, "last", "give first or last, not both"},
		{`{ approvalChanged(since: "not-a-time", waitSeconds: 0) { cursor } }`, "since", "since: not a time"},
	} {
		errs := e.fails(tc.query, nil)
		if errs[0].Extensions["code"] != "INVALID" || errs[0].Extensions["field"] != tc.field || !strings.Contains(errs[0].Message, tc.msg) || strings.Contains(errs[0].Message, "strconv") {
			t.Errorf("%s: %+v, want INVALID on %s with %q", tc.query, errs, tc.field, tc.msg)
		}
	}
}
