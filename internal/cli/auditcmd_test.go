package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb/chdbtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// TestAuditCommand runs gatehouse audit query, verify and export against
// a gateway's admin endpoints (the real handlers over the embedded
// engine), as an auditor and as a viewer.
func TestAuditCommand(t *testing.T) {
	ctx := context.Background()
	b := chdbtest.Open(t, "")
	if _, err := chschema.Migrate(ctx, b, chschema.Options{}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	seal := func(node string, n int, agent func(i int) string) []audit.Event {
		c := audit.Chain{Node: node}
		out := make([]audit.Event, n)
		for i := range out {
			out[i] = audit.Event{Time: start.Add(time.Duration(i) * time.Minute), Kind: audit.KindRequest, Agent: agent(i),
				VirtualServer: "eng", Upstream: "github", Method: "tools/call", Target: "github.create_issue",
				Arguments: fmt.Sprintf(`{"title":"issue\t%d"}`, i), Decision: "allow", Outcome: audit.OutcomeOK, TotalUs: uint64(1000 + i)}
			c.Seal(&out[i])
		}
		return out
	}
	events := seal("gw1", 10, func(i int) string { return []string{"ci-bot", "claude@alice"}[i%2] })
	if err := b.Insert(ctx, "audit_events", events, "gw1-batch"); err != nil {
		t.Fatal(err)
	}

	client, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	auditor, _, err := store.CreateAdminToken(ctx, client, "inspector", []string{"auditor"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	viewer, _, err := store.CreateAdminToken(ctx, client, "looker", []string{"viewer"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Mounted as serve mounts them.
	opts := &graph.HandlerOptions{Audit: &audit.API{Backend: b}, Logger: slog.New(slog.DiscardHandler)}
	mux := http.NewServeMux()
	mux.Handle("/graphql", graph.NewHandler(client, opts))
	mux.Handle("/audit/", graph.NewAuditHandler(client, opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv(EnvServer, srv.URL)
	t.Setenv(EnvAdminToken, auditor)

	run := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := Main(ctx, append([]string{"audit"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	t.Run("query", func(t *testing.T) {
		const q = "SELECT agent, count() AS calls, max(total_us) AS slowest, groupArray(arguments)[1] AS first_args FROM audit_events GROUP BY agent ORDER BY agent"
		code, out, errOut := run("query", q)
		want := "agent         calls  slowest  first_args\n" +
			`ci-bot        5      1008     {"title":"issue\t0"}` + "\n" +
			`claude@alice  5      1009     {"title":"issue\t1"}` + "\n" +
			"(2 rows)\n"
		if code != 0 || out != want {
			t.Errorf("table: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
		}
		code, out, _ = run("query", "--format", "csv", q)
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if code != 0 || err != nil || len(recs) != 3 || recs[0][0] != "agent" || recs[1][1] != "5" || recs[2][3] != `{"title":"issue\t1"}` {
			t.Errorf("csv: exit %d (%v) %q", code, err, out)
		}
		// Tabs and newlines in values do not break the table.
		code, out, _ = run("query", `SELECT 'a\tb\nc' AS s, [1, 2] AS list, NULL AS nothing FROM audit_events LIMIT 1`)
		if want := "s        list   nothing\n" + `a\tb\nc` + "  [1,2]  \n(1 row)\n"; code != 0 || out != want {
			t.Errorf("escaped table: exit %d\n%q\nwant\n%q", code, out, want)
		}
		code, out, _ = run("query", q, "--format", "json")
		var res struct{ Rows [][]any }
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Rows) != 2 {
			t.Errorf("json: exit %d %q", code, out)
		}
		code, out, _ = run("query", "--format=jsonl", q)
		if code != 0 || !strings.HasPrefix(out, `{"agent":"ci-bot","calls":5,`) || strings.Count(out, "\n") != 2 {
			t.Errorf("jsonl: exit %d %q", code, out)
		}
		code, _, errOut = run("query", "DROP TABLE audit_events")
		if code != 1 || !strings.Contains(errOut, "only SELECT queries are allowed (INVALID)") {
			t.Errorf("refused: exit %d %q", code, errOut)
		}
		code, _, errOut = run("query", "SELECT * FROM system.users")
		if code != 1 || !strings.Contains(errOut, "table system.users is not readable") {
			t.Errorf("system table: exit %d %q", code, errOut)
		}
	})

	t.Run("export", func(t *testing.T) {
		code, out, errOut := run("export", "--from", "2026-11-29", "--to", "2026-11-30", "--agent", "ci-bot")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != 0 || len(lines) != 5 {
			t.Fatalf("jsonl: exit %d, stderr %q, %d lines", code, errOut, len(lines))
		}
		for i, l := range lines {
			var e audit.Event
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.Agent != "ci-bot" || e.EventID != events[2*i].EventID || audit.HashEvent(&e) != e.Hash {
				t.Errorf("line %d (%v): %s", i, err, l)
			}
		}
		code, out, _ = run("export", "--from", "2026-11-29T09:03:00Z", "--to", "2026-11-29T09:05:00Z", "--format", "csv")
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if code != 0 || err != nil || len(recs) != 3 || recs[0][1] != "event_id" || recs[1][1] != events[3].EventID || recs[2][1] != events[4].EventID {
			t.Errorf("csv: exit %d (%v) %q", code, err, out)
		}
		// Every filter flag is a filter the gateway knows.
		for _, f := range auditFilterFlags {
			code, out, errOut := run("export", "--from", "2026-11-29", "--to", "2026-11-30", "--"+f.flag, "no-such-value")
			if code != 0 || out != "" {
				t.Errorf("--%s: exit %d, stderr %q, stdout %q", f.flag, code, errOut, out)
			}
		}
		code, _, errOut = run("export", "--from", "2026-11-29")
		if code != 2 || !strings.Contains(errOut, "needs --from and --to") {
			t.Errorf("no --to: exit %d %q", code, errOut)
		}
		code, _, errOut = run("export", "--from", "2026-11-30", "--to", "2026-11-29")
		if code != 1 || !strings.Contains(errOut, "to must be after from") {
			t.Errorf("reversed range: exit %d %q", code, errOut)
		}
		code, _, errOut = run("export", "--node", "gw1", "--from", "2026-11-29", "--to", "2026-11-30")
		if code != 2 || !strings.Contains(errOut, "--node does not apply to audit export") {
			t.Errorf("--node on export: exit %d %q", code, errOut)
		}
	})

	t.Run("verify", func(t *testing.T) {
		code, out, errOut := run("verify")
		if code != 0 || out != "gw1: 10 events, 0 checkpoints, last seq 10: ok\n" {
			t.Errorf("intact: exit %d, stderr %q, stdout %q", code, errOut, out)
		}
		// Node gw2 lost its 3rd event and had its 5th changed.
		bad := seal("gw2", 6, func(int) string { return "mallory" })
		bad[4].Target = "payroll.export"
		bad = append(bad[:2], bad[3:]...)
		if err := b.Insert(ctx, "audit_events", bad, "gw2-batch"); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = run("verify")
		if code != 1 || !strings.Contains(out, "gw1: 10 events, 0 checkpoints, last seq 10: ok\n") ||
			!strings.Contains(out, "gw2: 5 events, 0 checkpoints, last seq 6: 2 problem(s)\n  seq 4: gap: ") ||
			!strings.Contains(out, "  seq 5: modified: ") ||
			!strings.Contains(errOut, "the audit trail failed verification: 2 problem(s) in 1 of 2 node(s)") {
			t.Errorf("tampered: exit %d, stderr %q, stdout\n%s", code, errOut, out)
		}
		code, out, _ = run("verify", "--node", "gw1")
		if code != 0 || out != "gw1: 10 events, 0 checkpoints, last seq 10: ok\n" {
			t.Errorf("--node gw1: exit %d %q", code, out)
		}
		code, out, _ = run("verify", "--node", "gw2", "--json")
		var reports []verifyReport
		if code != 1 || json.Unmarshal([]byte(out), &reports) != nil || len(reports) != 1 || reports[0].OK || len(reports[0].Problems) != 2 {
			t.Errorf("--json: exit %d %q", code, out)
		}
	})

	t.Run("roles", func(t *testing.T) {
		t.Setenv(EnvAdminToken, viewer)
		for _, args := range [][]string{
			{"query", "SELECT 1 FROM audit_events"},
			{"verify"},
			{"export", "--from", "2026-11-29", "--to", "2026-11-30"},
		} {
			code, _, errOut := run(args...)
			if code != 1 || !strings.Contains(errOut, "FORBIDDEN") {
				t.Errorf("%v as viewer: exit %d %q", args, code, errOut)
			}
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			msg  string
		}{
			{nil, "give a subcommand"},
			{[]string{"drop"}, `unknown subcommand "drop"`},
			{[]string{"query"}, "audit query needs the SQL"},
			{[]string{"query", "SELECT 1", "extra"}, `unexpected argument "extra"`},
			{[]string{"query", "--format", "xml", "SELECT 1"}, `--format "xml"`},
			{[]string{"verify", "gw1"}, `unexpected argument "gw1"`},
		} {
			code, _, errOut := run(tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.msg) {
				t.Errorf("%v: exit %d %q, want 2 %q", tc.args, code, errOut, tc.msg)
			}
		}
	})
}
