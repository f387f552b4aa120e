package store

import (
	"context"
	"reflect"
	"testing"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

// TestPostgres runs the round trip and a second, changing apply on
// PostgreSQL, and opens the database twice (the second migration finds the
// schema current). It needs GATEHOUSE_TEST_POSTGRES_URL.
func TestPostgres(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	c, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	want := readmeDoc(t)
	if _, err := ApplyDocument(ctx, c, want, ApplyOptions{Actor: "pg"}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	c, err = Open(ctx, url)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer c.Close()
	got, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	sortDoc(want)
	want.Agents[0].APIKeys[1].SHA256 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
	if !reflect.DeepEqual(got.Upstreams, want.Upstreams) || !reflect.DeepEqual(got.VirtualServers, want.VirtualServers) || !reflect.DeepEqual(got.Agents, want.Agents) {
		t.Errorf("round trip on PostgreSQL:\ngot  %+v\nwant %+v", got, want)
	}
	res, err := ApplyDocument(ctx, c, want, ApplyOptions{Actor: "pg"})
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("second apply: %v %v", res, err)
	}
	// IDs are global: each type has its own range.
	u := c.Upstream.Query().Where(upstream.Name("everything")).OnlyX(ctx)
	a := c.Agent.Query().FirstX(ctx)
	if u.ID>>32 == a.ID>>32 {
		t.Errorf("upstream ID %d and agent ID %d share a range", u.ID, a.ID)
	}
	if n, err := c.Noder(ctx, u.ID); err != nil {
		t.Errorf("node(%d): %v", u.ID, err)
	} else if _, ok := n.(*ent.Upstream); !ok {
		t.Errorf("node(%d) is a %T, want *ent.Upstream", u.ID, n)
	}
}
