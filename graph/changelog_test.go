package graph_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

type changeOut struct {
	ID         string
	Op         string
	Actor      string
	EntityType string
	EntityID   string
	EntityName string
	Before     map[string]any
	After      map[string]any
}

// changes returns the change log entries matching where, oldest first, as
// the auditor reads them.
func (e *env) changes(where map[string]any) []changeOut {
	e.t.Helper()
	var out struct {
		AdminChanges struct {
			Edges []struct{ Node changeOut }
		}
	}
	_, resp := e.post(e.auditor, `query($where: AdminChangeWhereInput) {
		adminChanges(first: 50, where: $where, orderBy: [{field: AT}]) { edges { node {
			id op actor entityType entityID entityName before after } } } }`, map[string]any{"where": where})
	if len(resp.Errors) > 0 {
		e.t.Fatalf("adminChanges: %+v", resp.Errors)
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		e.t.Fatal(err)
	}
	var l []changeOut
	for _, ed := range out.AdminChanges.Edges {
		l = append(l, ed.Node)
	}
	return l
}

// TestChangeLog checks what the admin change log records of GraphQL
// mutations: who, what, before and after, secrets left out; that a failed
// operation records nothing (the entries share its transaction); that
// node(id) finds an entry; and that the log cannot be written through the
// API.
func TestChangeLog(t *testing.T) {
	t.Parallel()
	eachBackend(t, nil, func(t *testing.T, e *env) {
		u := e.createUpstream("everything", "streamable_http", "http://127.0.0.1:1/mcp")
		e.must(`mutation($id: ID!) { updateUpstream(id: $id, input: {url: "http://127.0.0.1:2/mcp", disabled: true}) { id } }`, map[string]any{"id": u.ID}, nil)
		e.must(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": u.ID}, nil)

		l := e.changes(map[string]any{"entityType": "Upstream"})
		if len(l) != 3 {
			t.Fatalf("%d entries for the upstream, want 3: %+v", len(l), l)
		}
		for i, op := range []string{"create", "update", "delete"} {
			c := l[i]
			if c.Op != op || c.Actor != "token:root" || c.EntityID != u.ID || c.EntityName != "everything" {
				t.Errorf("entry %d: %+v", i, c)
			}
		}
		if l[0].Before != nil || l[0].After["url"] != "http://127.0.0.1:1/mcp" || l[0].After["disabled"] != false {
			t.Errorf("create: before %v after %v", l[0].Before, l[0].After)
		}
		if l[1].Before["url"] != "http://127.0.0.1:1/mcp" || l[1].After["url"] != "http://127.0.0.1:2/mcp" || l[1].After["disabled"] != true {
			t.Errorf("update: before %v after %v", l[1].Before, l[1].After)
		}
		if l[2].After != nil || l[2].Before["url"] != "http://127.0.0.1:2/mcp" {
			t.Errorf("delete: before %v after %v", l[2].Before, l[2].After)
		}

		// Filters: by op, and by entity ID.
		if got := e.changes(map[string]any{"op": "update", "entityType": "Upstream"}); len(got) != 1 || got[0].ID != l[1].ID {
			t.Errorf("where op update: %+v", got)
		}
		if got := e.changes(map[string]any{"entityID": u.ID}); len(got) != 3 {
			t.Errorf("where entityID: %d entries", len(got))
		}

		// Token hashes never appear: the tokens made by newEnv and one
		// created here are logged without them.
		var tok struct {
			CreateAdminToken struct{ Token string }
		}
		e.must(`mutation { createAdminToken(input: {name: "ci", roles: ["viewer"]}) { token } }`, nil, &tok)
		tokens := e.changes(map[string]any{"entityType": "AdminToken"})
		if len(tokens) != 5 {
			t.Errorf("%d admin token entries, want 5", len(tokens))
		}
		_, resp := e.post(e.auditor, `{ adminChanges(first: 100) { edges { node { before after } } } }`, nil)
		for _, secret := range []string{tok.CreateAdminToken.Token, tok.CreateAdminToken.Token[8:], "token_hash", tokenHash(e, "ci")} {
			if strings.Contains(string(resp.Data), secret) {
				t.Errorf("the change log shows %q", secret)
			}
		}
		if tokens[4].After["prefix"] != tok.CreateAdminToken.Token[:8] || tokens[4].Actor != "token:root" || tokens[4].EntityName != "ci" {
			t.Errorf("token entry %+v", tokens[4])
		}

		// A failing operation (the second mutation is invalid) rolls back
		// the first one and its entry.
		rev, _ := store.Revision(context.Background(), e.client)
		errs := e.fails(`mutation { a: createTeam(input: {name: "fine"}) { id } b: createTeam(input: {name: "not fine"}) { id } }`, nil)
		if errs[0].Extensions["code"] != "INVALID" {
			t.Errorf("errors %+v", errs)
		}
		if got, _ := store.Revision(context.Background(), e.client); got != rev || len(e.changes(map[string]any{"entityType": "Team"})) != 0 {
			t.Errorf("a rolled-back operation left revision %d (was %d) or entries", got, rev)
		}

		// node(id) reads an entry.
		var node struct {
			Node struct {
				Typename   string `json:"__typename"`
				EntityType string
			}
		}
		_, resp = e.post(e.auditor, `query($id: ID!) { node(id: $id) { __typename ... on AdminChange { entityType } } }`, map[string]any{"id": l[0].ID})
		if err := json.Unmarshal(resp.Data, &node); err != nil || node.Node.Typename != "AdminChange" || node.Node.EntityType != "Upstream" {
			t.Errorf("node of an entry: %s %+v", resp.Data, resp.Errors)
		}

		// The API offers no way to write the log.
		var schema struct {
			Schema struct {
				MutationType struct{ Fields []struct{ Name string } }
			} `json:"__schema"`
		}
		e.must(`{ __schema { mutationType { fields { name } } } }`, nil, &schema)
		for _, f := range schema.Schema.MutationType.Fields {
			if strings.Contains(f.Name, "AdminChange") {
				t.Errorf("mutation %s writes the change log", f.Name)
			}
		}
	})
}

// tokenHash reads the stored hash of the admin token named name.
func tokenHash(e *env, name string) string {
	var h string
	if err := e.rawDB().QueryRow("SELECT token_hash FROM admin_tokens WHERE name = '" + name + "'").Scan(&h); err != nil {
		e.t.Fatal(err)
	}
	return h
}
