package graph_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/spool/spooltest"
)

// TestStoreDiskFull: on a full disk a mutation fails with
// STORE_UNAVAILABLE and changes nothing; once space is freed the same
// mutation succeeds, without a restart.
func TestStoreDiskFull(t *testing.T) {
	t.Parallel()
	fs := spooltest.SmallFS(t, 8<<20)
	e := newEnvAt(t, "sqlite://"+filepath.Join(fs, "gatehouse.db"), nil)
	e.createUpstream("before", "streamable_http", "http://127.0.0.1:9/before")
	filler := filepath.Join(fs, "filler")
	spooltest.Fill(t, filler, 0)
	in := map[string]any{"in": map[string]any{"name": "during", "transport": "streamable_http", "url": "http://127.0.0.1:9/during"}}
	errs := e.fails(createUpstream, in)
	if errs[0].Extensions["code"] != "STORE_UNAVAILABLE" || !strings.Contains(errs[0].Message, "configuration store") {
		t.Fatalf("mutation on a full disk: %+v", errs)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if e.hasUpstream("during") {
		t.Fatal("the failed mutation left its upstream")
	}
	e.createUpstream("during", "streamable_http", "http://127.0.0.1:9/during")
	if !e.hasUpstream("during") || !e.hasUpstream("before") {
		t.Error("upstreams missing after space was freed")
	}
}
