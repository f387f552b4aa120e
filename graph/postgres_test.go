package graph_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

// TestPostgres drives the API over PostgreSQL: pagination, and the errors
// whose wording comes from the database (unique and foreign-key violations).
// It needs GATEHOUSE_TEST_POSTGRES_URL.
func TestPostgres(t *testing.T) {
	e := newEnvAt(t, storetest.PostgresURL(t), "", nil)
	a := e.createUpstream("a", "stdio", "")
	e.createUpstream("b", "sse", "http://127.0.0.1:4/sse")

	var page struct {
		Upstreams struct {
			TotalCount int
			Edges      []struct{ Node struct{ Name string } }
		}
	}
	e.must(`{ upstreams(first: 1, orderBy: [{field: NAME, direction: DESC}]) { totalCount edges { node { name } } } }`, nil, &page)
	if page.Upstreams.TotalCount != 2 || len(page.Upstreams.Edges) != 1 || page.Upstreams.Edges[0].Node.Name != "b" {
		t.Errorf("page %+v", page)
	}

	errs := e.fails(`mutation { createUpstream(input: {name: "a", transport: stdio, command: "x"}) { id } }`, nil)
	if errs[0].Extensions["code"] != "CONFLICT" || errs[0].Extensions["field"] != "input.name" {
		t.Errorf("duplicate name: %+v", errs)
	}
	var vs struct{ CreateVirtualServer struct{ ID string } }
	e.must(`mutation { createVirtualServer(input: {name: "vs"}) { id } }`, nil, &vs)
	e.must(`mutation($vs: ID!, $up: ID!) { createSelection(input: {virtualServerID: $vs, upstreamID: $up}) { id } }`,
		map[string]any{"vs": vs.CreateVirtualServer.ID, "up": a.ID}, nil)
	errs = e.fails(`mutation($id: ID!) { deleteUpstream(id: $id) }`, map[string]any{"id": a.ID})
	if errs[0].Extensions["code"] != "IN_USE" {
		t.Errorf("deleting an upstream in use: %+v", errs)
	}
}
