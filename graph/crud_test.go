package graph_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// TestCRUDEveryEntity creates, reads (connection with where, and node),
// updates and deletes one entity of every type through its GraphQL
// mutations, checking the fields and the recorded actor at each step.
func TestCRUDEveryEntity(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		up := e.createUpstream("base", "stdio", "")
		var base struct {
			VS struct{ ID string } `json:"vs"`
			AG struct{ ID string } `json:"ag"`
		}
		e.must(`mutation { vs: createVirtualServer(input: {name: "base-vs"}) { id } ag: createAgent(input: {name: "base-agent"}) { id } }`, nil, &base)

		for _, tc := range []struct {
			typ, conn      string
			create, update map[string]any
			field          string // checked after create (create's value) and update (update's)
		}{
			{"Upstream", "upstreams",
				map[string]any{"name": "u", "transport": "streamable_http", "url": "http://127.0.0.1:1/mcp"},
				map[string]any{"url": "http://127.0.0.1:2/mcp"}, "url"},
			{"Tool", "tools",
				map[string]any{"name": "echo", "upstreamID": up.ID, "inputSchema": map[string]any{"type": "object"}, "description": "Echo."},
				map[string]any{"description": "Echo back."}, "description"},
			{"VirtualServer", "virtualServers",
				map[string]any{"name": "vs", "anonymous": false},
				map[string]any{"anonymous": true}, "anonymous"},
			{"Selection", "selections",
				map[string]any{"virtualServerID": base.VS.ID, "upstreamID": up.ID, "tools": []string{"a"}},
				map[string]any{"tools": []string{"a", "b"}}, "tools"},
			{"Team", "teams",
				map[string]any{"name": "t", "description": "first"},
				map[string]any{"description": "second"}, "description"},
			{"Role", "roles",
				map[string]any{"name": "r", "description": "first"},
				map[string]any{"description": "second"}, "description"},
			{"Agent", "agents",
				map[string]any{"name": "a", "labels": map[string]any{"env": "dev"}},
				map[string]any{"labels": map[string]any{"env": "prod"}}, "labels"},
			{"APIKey", "apiKeys",
				map[string]any{"agentID": base.AG.ID, "keyHash": identity.HashKey("gh_crud"), "revoked": false},
				map[string]any{"revoked": true}, "revoked"},
			{"Grant", "grants",
				map[string]any{"virtualServerID": base.VS.ID, "subjectKind": "agent", "subject": "base-agent", "tools": []string{"*"}, "priority": 1},
				map[string]any{"priority": 5}, "priority"},
			{"PolicyRule", "policyRules",
				map[string]any{"name": "p", "expression": "true", "enabled": true},
				map[string]any{"enabled": false}, "enabled"},
			{"GuardrailRule", "guardrailRules",
				map[string]any{"name": "g", "detector": "pii", "kinds": []string{"email"}, "action": "block"},
				map[string]any{"action": "flag"}, "action"},
			{"RateLimit", "rateLimits",
				map[string]any{"name": "rl", "virtualServerID": base.VS.ID, "key": "team", "requests": 10, "perSeconds": 60},
				map[string]any{"requests": 20}, "requests"},
			{"ApprovalRule", "approvalRules",
				map[string]any{"name": "ar", "approverGroups": []string{"sre"}, "quorum": 1},
				map[string]any{"quorum": 2}, "quorum"},
			{"SecretBinding", "secretBindings",
				map[string]any{"name": "sb", "upstreamID": up.ID, "source": "dynamic", "role": "r", "key": "password", "path": "database", "injection": "env", "target": "DB_PASSWORD"},
				map[string]any{"target": "PGPASSWORD"}, "target"},
			{"AdminToken", "adminTokens",
				map[string]any{"name": "tok", "roles": []string{"viewer"}},
				map[string]any{"roles": []string{"viewer", "auditor"}}, "roles"},
		} {
			t.Run(tc.typ, func(t *testing.T) {
				e := e.sub(t)
				// Create.
				create := fmt.Sprintf(`mutation($in: Create%sInput!) { create%s(input: $in) { id createdBy %s } }`, tc.typ, tc.typ, tc.field)
				if tc.typ == "AdminToken" {
					create = `mutation($in: CreateAdminTokenInput!) { createAdminToken(input: $in) { adminToken { id createdBy roles } } }`
				}
				var created map[string]map[string]json.RawMessage
				e.must(create, map[string]any{"in": tc.create}, &created)
				node := created["create"+tc.typ]
				if tc.typ == "AdminToken" {
					var inner map[string]json.RawMessage
					_ = json.Unmarshal(created["createAdminToken"]["adminToken"], &inner)
					node = inner
				}
				var id string
				_ = json.Unmarshal(node["id"], &id)
				if string(node["createdBy"]) != `"token:root"` || !sameJSON(node[tc.field], tc.create[tc.field]) {
					t.Errorf("created %s", jsonOf(node))
				}
				// Read through the connection and node(id).
				read := fmt.Sprintf(`query($id: ID!) { %s(where: {id: $id}) { totalCount edges { node { id %s } } } n: node(id: $id) { __typename id } }`, tc.conn, tc.field)
				var got map[string]json.RawMessage
				e.must(read, map[string]any{"id": id}, &got)
				var conn struct {
					TotalCount int
					Edges      []struct{ Node map[string]json.RawMessage }
				}
				_ = json.Unmarshal(got[tc.conn], &conn)
				var n struct {
					Typename string `json:"__typename"`
					ID       string
				}
				_ = json.Unmarshal(got["n"], &n)
				if conn.TotalCount != 1 || !sameJSON(conn.Edges[0].Node[tc.field], tc.create[tc.field]) || n.Typename != tc.typ || n.ID != id {
					t.Errorf("read back %s", jsonOf(got))
				}
				// Update.
				update := fmt.Sprintf(`mutation($id: ID!, $in: Update%sInput!) { update%s(id: $id, input: $in) { id updatedBy %s } }`, tc.typ, tc.typ, tc.field)
				var updated map[string]map[string]json.RawMessage
				e.must(update, map[string]any{"id": id, "in": tc.update}, &updated)
				if u := updated["update"+tc.typ]; string(u["updatedBy"]) != `"token:root"` || !sameJSON(u[tc.field], tc.update[tc.field]) {
					t.Errorf("updated %s", jsonOf(u))
				}
				// Delete.
				var deleted map[string]string
				e.must(fmt.Sprintf(`mutation($id: ID!) { delete%s(id: $id) }`, tc.typ), map[string]any{"id": id}, &deleted)
				if deleted["delete"+tc.typ] != id {
					t.Errorf("delete returned %v, want %s", deleted, id)
				}
				e.must(read[:strings.Index(read, " n: node")]+" }", map[string]any{"id": id}, &got)
				_ = json.Unmarshal(got[tc.conn], &conn)
				if conn.TotalCount != 0 {
					t.Errorf("%d left after delete", conn.TotalCount)
				}
			})
		}
	})
}

// sub returns e for a subtest: failures are reported on t.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// sameJSON reports whether raw encodes the same JSON value as v.
func sameJSON(raw json.RawMessage, v any) bool {
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		return false
	}
	want, _ := json.Marshal(v)
	_ = json.Unmarshal(want, &b)
	return jsonOf(a) == jsonOf(b)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestPaginationOver250 creates 260 teams in one operation (one
// transaction), pages through all of them forwards with first/after and
// backwards with last/before, filters them with where, and pages through
// the 260 change log entries they made.
func TestPaginationOver250(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		const n = 260
		for half := range 2 { // two mutations: one would pass the token limit
			var m strings.Builder
			m.WriteString("mutation {")
			for i := half * n / 2; i < (half+1)*n/2; i++ {
				fmt.Fprintf(&m, " t%d: createTeam(input: {name: \"team-%03d\", description: \"%s\"}) { id }", i, i, []string{"even", "odd"}[i%2])
			}
			m.WriteString(" }")
			e.must(m.String(), nil, nil)
		}

		type page struct {
			TotalCount int
			Edges      []struct {
				Node   struct{ Name string }
				Cursor string
			}
			PageInfo struct {
				HasNextPage, HasPreviousPage bool
				StartCursor, EndCursor       *string
			}
		}
		const q = `query($first: Int, $after: Cursor, $last: Int, $before: Cursor, $where: TeamWhereInput, $order: [TeamOrder!]) {
			teams(first: $first, after: $after, last: $last, before: $before, where: $where, orderBy: $order) {
				totalCount edges { node { name } cursor } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`
		byName := []map[string]any{{"field": "NAME"}}
		fetch := func(vars map[string]any) page {
			var out struct{ Teams page }
			e.must(q, vars, &out)
			return out.Teams
		}

		var names []string
		pages := 0
		var after *string
		for {
			p := fetch(map[string]any{"first": 50, "after": after, "order": byName})
			pages++
			if p.TotalCount != n {
				t.Fatalf("totalCount %d, want %d", p.TotalCount, n)
			}
			for _, ed := range p.Edges {
				names = append(names, ed.Node.Name)
			}
			if !p.PageInfo.HasNextPage {
				break
			}
			after = p.PageInfo.EndCursor
			if pages > n/50+1 {
				t.Fatal("pagination does not end")
			}
		}
		if pages != 6 || len(names) != n {
			t.Fatalf("%d pages, %d names; want 6 and %d", pages, len(names), n)
		}
		for i, name := range names {
			if want := fmt.Sprintf("team-%03d", i); name != want {
				t.Fatalf("item %d is %s, want %s", i, name, want)
			}
		}

		// Backwards from the end, 65 at a time.
		var back []string
		var before *string
		for {
			p := fetch(map[string]any{"last": 65, "before": before, "order": byName})
			var chunk []string
			for _, ed := range p.Edges {
				chunk = append(chunk, ed.Node.Name)
			}
			back = append(chunk, back...)
			if !p.PageInfo.HasPreviousPage {
				break
			}
			before = p.PageInfo.StartCursor
			if len(back) > n {
				t.Fatal("backward pagination does not end")
			}
		}
		if strings.Join(back, ",") != strings.Join(names, ",") {
			t.Errorf("backward pages differ from forward ones")
		}

		// Filters.
		for _, tc := range []struct {
			name  string
			where map[string]any
			want  int
			first string
		}{
			{"prefix", map[string]any{"nameHasPrefix": "team-1"}, 100, "team-100"},
			{"in", map[string]any{"nameIn": []string{"team-007", "team-250", "nope"}}, 2, "team-007"},
			{"and", map[string]any{"and": []any{map[string]any{"nameHasPrefix": "team-2"}, map[string]any{"description": "odd"}}}, 30, "team-201"},
			{"not", map[string]any{"not": map[string]any{"nameLT": "team-255"}}, 5, "team-255"},
			{"contains fold", map[string]any{"descriptionContainsFold": "EVE"}, 130, "team-000"},
			{"created by", map[string]any{"createdBy": "token:root", "nameGTE": "team-259"}, 1, "team-259"},
		} {
			p := fetch(map[string]any{"first": 1, "where": tc.where, "order": byName})
			if p.TotalCount != tc.want || len(p.Edges) != 1 || p.Edges[0].Node.Name != tc.first {
				t.Errorf("%s: %d matches, first %+v; want %d, %s", tc.name, p.TotalCount, p.Edges, tc.want, tc.first)
			}
		}

		// The change log has an entry per team; the auditor pages through them.
		const log = `query($after: Cursor) { adminChanges(first: 100, after: $after, where: {entityType: "Team", op: create}, orderBy: [{field: ENTITY_NAME}]) {
			totalCount edges { node { entityName actor } } pageInfo { hasNextPage endCursor } } }`
		var entries []string
		after = nil
		for range 10 {
			var out struct {
				AdminChanges struct {
					TotalCount int
					Edges      []struct {
						Node struct{ EntityName, Actor string }
					}
					PageInfo struct {
						HasNextPage bool
						EndCursor   *string
					}
				}
			}
			_, resp := e.post(e.auditor, log, map[string]any{"after": after})
			if len(resp.Errors) > 0 {
				t.Fatalf("adminChanges: %+v", resp.Errors)
			}
			if err := json.Unmarshal(resp.Data, &out); err != nil {
				t.Fatal(err)
			}
			for _, ed := range out.AdminChanges.Edges {
				if ed.Node.Actor != "token:root" {
					t.Errorf("entry %s by %q", ed.Node.EntityName, ed.Node.Actor)
				}
				entries = append(entries, ed.Node.EntityName)
			}
			if !out.AdminChanges.PageInfo.HasNextPage {
				break
			}
			after = out.AdminChanges.PageInfo.EndCursor
		}
		if strings.Join(entries, ",") != strings.Join(names, ",") {
			t.Errorf("change log pages: %d entries, want the %d teams in order", len(entries), n)
		}
	})
}
