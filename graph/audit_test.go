package graph_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb/chdbtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
)

// auditTrail is the audit trail the tests read: events recorded by a real
// writer (node gw1) into the embedded engine, and, in a database of its
// own, a chain with a gap and a modified event. chDB runs one engine per
// process, so it is loaded once for the package and closed by TestMain.
type auditTrail struct {
	api      *audit.API // gw1's trail
	tampered *audit.API // node gw9: seq 3 deleted, seq 4 modified
	backend  audit.Backend
	// events are gw1's events as recorded (sealed), in seq order.
	events []audit.Event
	// yesterday is midnight UTC of the engine's yesterday(), the day most
	// events happened.
	yesterday time.Time
}

var (
	auditOnce     sync.Once
	auditData     *auditTrail
	auditLoadErr  error
	auditCleanups []func()
)

// closeAuditTrail closes the engine and removes its data (TestMain).
func closeAuditTrail() {
	for _, f := range slices.Backward(auditCleanups) {
		f()
	}
}

// loadAuditTrail returns the package's audit trail, loading it on first
// use.
func loadAuditTrail(t *testing.T) *auditTrail {
	t.Helper()
	lib := chdbtest.LibPath(t)
	auditOnce.Do(func() { auditData, auditLoadErr = newAuditTrail(lib) })
	if auditLoadErr != nil {
		t.Fatal(auditLoadErr)
	}
	return auditData
}

func newAuditTrail(lib string) (*auditTrail, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gatehouse-graph-audit-")
	if err != nil {
		return nil, err
	}
	auditCleanups = append(auditCleanups, func() { os.RemoveAll(dir) })
	b, err := chdb.Open(ctx, chdb.Options{LibPath: lib, DataDir: filepath.Join(dir, "chdb")})
	if err != nil {
		return nil, err
	}
	auditCleanups = append(auditCleanups, func() { b.Close() })
	if _, err := chschema.Migrate(ctx, b, chschema.Options{}); err != nil {
		return nil, err
	}
	res, err := b.Query(ctx, "SELECT toString(yesterday())", audit.QueryOptions{})
	if err != nil {
		return nil, err
	}
	y, err := time.Parse(time.DateOnly, fmt.Sprint(res.Rows[0][0]))
	if err != nil {
		return nil, err
	}
	at := &auditTrail{backend: b, yesterday: y}

	w, err := audit.OpenWriter(ctx, audit.WriterOptions{
		Dir: filepath.Join(dir, "audit"), Node: "gw1", Backend: b,
		BatchSize: 500, BatchWait: 20 * time.Millisecond, CheckpointEvery: 200,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	for _, e := range fixtureEvents(y) {
		if err := w.Record(e); err != nil {
			w.Close()
			return nil, err
		}
		at.events = append(at.events, *e)
	}
	want := len(at.events)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		n, err := countRows(ctx, b, "SELECT count() FROM audit_events")
		if err != nil {
			w.Close()
			return nil, err
		}
		cps, err := countRows(ctx, b, "SELECT count() FROM audit_checkpoints")
		if err != nil {
			w.Close()
			return nil, err
		}
		if n == want && cps > 0 {
			break
		}
		if time.Now().After(deadline) {
			w.Close()
			return nil, fmt.Errorf("%d of %d events shipped, %d checkpoints", n, want, cps)
		}
	}
	at.api = &audit.API{Backend: b, Keys: map[string]ed25519.PublicKey{"gw1": w.PublicKey()}}
	if err := w.Close(); err != nil {
		return nil, err
	}

	// A chain someone tampered with, in a database of its own.
	opts := chschema.Options{Database: "tampered"}
	if _, err := chschema.Migrate(ctx, b, opts); err != nil {
		return nil, err
	}
	chain := audit.Chain{Node: "gw9"}
	var bad []audit.Event
	for i := range 5 {
		e := audit.Event{Time: y.Add(time.Duration(i) * time.Minute), Kind: audit.KindRequest, Agent: "mallory", Method: "tools/call",
			Target: "payroll.export", Outcome: audit.OutcomeOK}
		chain.Seal(&e)
		bad = append(bad, e)
	}
	bad[3].Target = "echo" // modified after sealing
	bad = slices.Delete(bad, 2, 3)
	if err := b.Insert(ctx, opts.Table("audit_events"), bad, ""); err != nil {
		return nil, err
	}
	at.tampered = &audit.API{Backend: b, Tables: audit.Tables{Events: opts.EventsTable(), ReadCheckpoints: opts.CheckpointsTable()}}
	return at, nil
}

func countRows(ctx context.Context, b audit.Backend, q string) (int, error) {
	res, err := b.Query(ctx, q, audit.QueryOptions{})
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(fmt.Sprint(res.Rows[0][0]), &n)
	return n, err
}

// fixtureEvents are the events of gw1: on day y, ci-bot's GitHub calls
// (some tool errors), its calls denied for prompt injection and by policy,
// claude@alice's deploys held for approval (one approved by bob, one
// denied by carol) with their approval steps, a call flagged (not denied)
// for injection, and an admin change; two days before, 1,200 calls of
// load-bot (more than one export page).
func fixtureEvents(y time.Time) []*audit.Event {
	var out []*audit.Event
	add := func(e audit.Event) *audit.Event {
		out = append(out, &e)
		return &e
	}
	for i := range 20 {
		e := audit.Event{Time: y.Add(10*time.Hour + time.Duration(i)*time.Minute), Kind: audit.KindRequest,
			RequestID: fmt.Sprintf("req-gh-%d", i), SessionID: "sess-ci-1", Agent: "ci-bot", Team: "platform", Roles: []string{"ci"},
			AuthMethod: "api_key", VirtualServer: "eng", Upstream: "github", Method: "tools/call", Target: "github.create_issue",
			Arguments: fmt.Sprintf(`{"title":"flaky test %d","labels":["ci"]}`, i), ArgsHash: fmt.Sprintf("h%d", i),
			Decision: "allow", Grants: []string{"eng-tools"}, PolicyRevision: 7, Outcome: audit.OutcomeOK,
			AuthUs: 20, PolicyUs: 5, UpstreamUs: 1400, TotalUs: 1500, RequestBytes: 120, ResponseBytes: 900}
		if i%5 == 4 {
			e.Outcome, e.Error = audit.OutcomeToolError, "tool returned isError"
		}
		add(e)
	}
	for i := range 3 {
		add(audit.Event{Time: y.Add(11*time.Hour + time.Duration(i)*time.Minute), Kind: audit.KindRequest,
			RequestID: fmt.Sprintf("req-pg-%d", i), SessionID: "sess-ci-2", Agent: "ci-bot", Team: "platform", AuthMethod: "api_key",
			VirtualServer: "eng", Upstream: "postgres", Method: "tools/call", Target: "postgres.query",
			Arguments: `{"query":"[REDACTED]"}`, Decision: "deny", Rule: "no-injection", PolicyRevision: 7,
			Findings: []audit.Finding{{Rule: "no-injection", Detector: "injection", Kind: "prompt_injection", Path: "$.query", Action: "block", Start: 0, End: 42}},
			Outcome:  audit.OutcomeBlocked, ErrorCode: -32055, Error: "blocked by guardrail no-injection", GuardUs: 80, TotalUs: 300})
	}
	add(audit.Event{Time: y.Add(11*time.Hour + 30*time.Minute), Kind: audit.KindRequest, RequestID: "req-pg-drop", Agent: "ci-bot",
		Team: "platform", AuthMethod: "api_key", VirtualServer: "eng", Upstream: "postgres", Method: "tools/call", Target: "postgres.drop",
		Arguments: `{"table":"users"}`, Decision: "deny", Rule: "no-prod-writes", Outcome: audit.OutcomeDenied, ErrorCode: -32050, TotalUs: 200})
	add(audit.Event{Time: y.Add(12 * time.Hour), Kind: audit.KindRequest, RequestID: "req-fetch", Agent: "claude@alice", Team: "finance",
		AuthMethod: "oidc", VirtualServer: "ops", Upstream: "web", Method: "tools/call", Target: "fetch", Arguments: `{"url":"https://example.com"}`,
		Decision: "allow", Grants: []string{"ops-read"},
		Findings: []audit.Finding{{Rule: "flag-injection", Detector: "injection", Kind: "prompt_injection", Path: "$.content[0].text", Action: "flag", Start: 5, End: 60}},
		Outcome:  audit.OutcomeOK, UpstreamUs: 90_000, TotalUs: 95_000})
	for i, d := range []struct {
		id, approver, decision, outcome string
	}{{"apr-1", "token:bob", "approve", audit.OutcomeOK}, {"apr-2", "token:carol", "deny", audit.OutcomeDenied}} {
		t0 := y.Add(13*time.Hour + time.Duration(i)*time.Hour)
		add(audit.Event{Time: t0, Kind: audit.KindApproval, ApprovalID: d.id, Agent: "claude@alice", VirtualServer: "ops",
			Method: "approval/requested", Target: "deploy", Rule: "two-sre", Approvers: []string{"sre"}, Outcome: "pending"})
		add(audit.Event{Time: t0.Add(2 * time.Minute), Kind: audit.KindApproval, ApprovalID: d.id, Agent: "claude@alice", VirtualServer: "ops",
			Method: "approval/decided", Target: "deploy", Rule: "two-sre", Decision: d.decision, Approvers: []string{d.approver}, Outcome: "decided"})
		add(audit.Event{Time: t0, Kind: audit.KindRequest, RequestID: "req-" + d.id, Agent: "claude@alice", Team: "finance", AuthMethod: "oidc",
			VirtualServer: "ops", Upstream: "deployer", Method: "tools/call", Target: "deploy", Arguments: `{"service":"billing","version":"1.4.2"}`,
			Decision: "require_approval", ApprovalID: d.id, Approvers: []string{d.approver}, SecretBindings: []string{"deploy-token"},
			LeaseIDs: []string{"deploy/creds/ci/" + d.id}, Outcome: d.outcome, ApprovalUs: 120_000_000, UpstreamUs: 2_000_000, TotalUs: 122_000_000})
	}
	add(audit.Event{Time: y.Add(15 * time.Hour), Kind: audit.KindAdmin, RequestID: "admin-change-12", Agent: "token:root", AuthMethod: "admin",
		Method: "update", Target: "virtual_server:eng", Arguments: `{"before":{"disabled":false},"after":{"disabled":true}}`, Outcome: audit.OutcomeOK})
	for i := range 1200 {
		add(audit.Event{Time: y.Add(-48*time.Hour + time.Duration(i)*10*time.Second), Kind: audit.KindRequest,
			RequestID: fmt.Sprintf("req-load-%d", i), Agent: "load-bot", Team: "qa", AuthMethod: "api_key", VirtualServer: "eng",
			Upstream: "everything", Method: "tools/call", Target: "echo", Arguments: fmt.Sprintf(`{"i":%d}`, i), Decision: "allow",
			Outcome: audit.OutcomeOK, UpstreamUs: uint64(100 + i%50), TotalUs: uint64(150 + i%50)})
	}
	return out
}

// auditEnv is an admin API (and audit endpoints) over the package's audit
// trail, or with the audit trail off when api is nil.
func auditEnv(t *testing.T, api graph.AuditAPI) (*env, *graph.HandlerOptions) {
	t.Helper()
	opts := &graph.HandlerOptions{Audit: api, Logger: slog.New(slog.DiscardHandler)}
	return newEnv(t, opts), opts
}

type auditEventOut struct {
	Time          time.Time       `json:"time"`
	EventID       string          `json:"eventID"`
	Node          string          `json:"node"`
	Seq           int             `json:"seq"`
	Kind          string          `json:"kind"`
	Agent         string          `json:"agent"`
	Target        string          `json:"target"`
	Outcome       string          `json:"outcome"`
	Arguments     json.RawMessage `json:"arguments"`
	Approvers     []string        `json:"approvers"`
	Findings      []map[string]any
	TotalUs       int `json:"totalUs"`
	PrevHash      string
	Hash          string
	LeaseIDs      []string `json:"leaseIDs"`
	ApprovalID    string   `json:"approvalID"`
	VirtualServer string   `json:"virtualServer"`
}

type auditPage struct {
	AuditEvents struct {
		Edges []struct {
			Cursor string        `json:"cursor"`
			Node   auditEventOut `json:"node"`
		} `json:"edges"`
		PageInfo struct {
			HasNextPage bool    `json:"hasNextPage"`
			EndCursor   *string `json:"endCursor"`
		} `json:"pageInfo"`
	} `json:"auditEvents"`
}

const auditEventsQuery = `query($w: AuditEventWhere, $o: AuditOrder, $n: Int, $a: String) {
  auditEvents(where: $w, orderBy: $o, first: $n, after: $a) {
    edges { cursor node { time eventID node seq prevHash hash kind agent target outcome arguments approvers approvalID virtualServer leaseIDs totalUs
      findings { rule detector kind path action start end } } }
    pageInfo { hasNextPage endCursor } } }`

// pages lists every event matching where, n at a time, as token, and
// returns their IDs in the order received.
func (e *env) auditPages(token string, where map[string]any, order string, n int) (ids []string, pages int) {
	e.t.Helper()
	var after any
	for {
		vars := map[string]any{"w": where, "n": n, "a": after}
		if order != "" {
			vars["o"] = order
		}
		status, resp := e.post(token, auditEventsQuery, vars)
		if status != 200 || len(resp.Errors) > 0 {
			e.t.Fatalf("auditEvents: HTTP %d %+v", status, resp.Errors)
		}
		var p auditPage
		if err := json.Unmarshal(resp.Data, &p); err != nil {
			e.t.Fatal(err)
		}
		pages++
		for _, edge := range p.AuditEvents.Edges {
			ids = append(ids, edge.Node.EventID)
		}
		if !p.AuditEvents.PageInfo.HasNextPage {
			return ids, pages
		}
		after = *p.AuditEvents.PageInfo.EndCursor
		if pages > 100 {
			e.t.Fatal("more than 100 pages")
		}
	}
}

// expectIDs are the IDs of the events match accepts, newest first (asc:
// oldest first), ties by event ID as the backend orders them.
func (at *auditTrail) expectIDs(asc bool, match func(*audit.Event) bool) []string {
	var list []audit.Event
	for _, e := range at.events {
		if match(&e) {
			list = append(list, e)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time) == asc
		}
		return (a.EventID < b.EventID) == asc
	})
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.EventID
	}
	return ids
}

// TestAuditEventsPaging pages through events in both orders, a few at a
// time, and checks every event comes exactly once, in order; that an
// edge's cursor resumes right after its event; and that the event's fields
// come back as recorded.
func TestAuditEventsPaging(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, _ := auditEnv(t, at.api)
	ciBot := func(ev *audit.Event) bool { return ev.Agent == "ci-bot" }
	for _, tc := range []struct {
		order string
		asc   bool
	}{{"", false}, {"TIME_DESC", false}, {"TIME_ASC", true}} {
		ids, pages := e.auditPages(e.auditor, map[string]any{"agent": "ci-bot"}, tc.order, 5)
		want := at.expectIDs(tc.asc, ciBot)
		if !slices.Equal(ids, want) {
			t.Errorf("order %q: got %v\nwant %v", tc.order, ids, want)
		}
		if pages != (len(want)+4)/5 {
			t.Errorf("order %q: %d pages for %d events", tc.order, pages, len(want))
		}
	}

	// Resume after the 3rd edge: the page continues with the 4th.
	var p auditPage
	e.must(auditEventsQuery, map[string]any{"w": map[string]any{"agent": "ci-bot"}, "n": 6}, &p)
	edges := p.AuditEvents.Edges
	if len(edges) != 6 || !p.AuditEvents.PageInfo.HasNextPage || *p.AuditEvents.PageInfo.EndCursor != edges[5].Cursor {
		t.Fatalf("first page: %d edges, pageInfo %+v", len(edges), p.AuditEvents.PageInfo)
	}
	var q auditPage
	e.must(auditEventsQuery, map[string]any{"w": map[string]any{"agent": "ci-bot"}, "n": 3, "a": edges[2].Cursor}, &q)
	for i, edge := range q.AuditEvents.Edges {
		if edge.Node.EventID != edges[3+i].Node.EventID {
			t.Errorf("after edge 3: edge %d is %s, want %s", i, edge.Node.EventID, edges[3+i].Node.EventID)
		}
	}

	// The fields as recorded: an approved deploy.
	var d auditPage
	e.must(auditEventsQuery, map[string]any{"w": map[string]any{"approvalID": "apr-1", "kind": "request"}}, &d)
	if len(d.AuditEvents.Edges) != 1 || d.AuditEvents.PageInfo.HasNextPage {
		t.Fatalf("apr-1 request: %+v", d.AuditEvents)
	}
	got := d.AuditEvents.Edges[0].Node
	var rec audit.Event
	for _, ev := range at.events {
		if ev.ApprovalID == "apr-1" && ev.Kind == audit.KindRequest {
			rec = ev
		}
	}
	if got.EventID != rec.EventID || got.Node != "gw1" || got.Seq != int(rec.Seq) || got.Hash != rec.Hash || got.PrevHash != rec.PrevHash ||
		!got.Time.Equal(rec.Time) || got.Agent != "claude@alice" || got.Target != "deploy" || got.TotalUs != 122_000_000 ||
		!slices.Equal(got.Approvers, []string{"token:bob"}) || !slices.Equal(got.LeaseIDs, []string{"deploy/creds/ci/apr-1"}) ||
		string(got.Arguments) != `{"service":"billing","version":"1.4.2"}` {
		t.Errorf("apr-1 request event:\n got %+v\nrecorded %+v", got, rec)
	}
	// Findings come back as objects.
	var f auditPage
	e.must(auditEventsQuery, map[string]any{"w": map[string]any{"requestID": "req-fetch"}}, &f)
	if fs := f.AuditEvents.Edges[0].Node.Findings; len(fs) != 1 || fs[0]["detector"] != "injection" || fs[0]["path"] != "$.content[0].text" ||
		fs[0]["action"] != "flag" || fs[0]["start"] != float64(5) || fs[0]["end"] != float64(60) {
		t.Errorf("findings: %+v", fs)
	}
	// An empty page has no end cursor.
	var none auditPage
	e.must(auditEventsQuery, map[string]any{"w": map[string]any{"agent": "nobody"}}, &none)
	if len(none.AuditEvents.Edges) != 0 || none.AuditEvents.PageInfo.HasNextPage || none.AuditEvents.PageInfo.EndCursor != nil {
		t.Errorf("no events: %+v", none.AuditEvents)
	}
}

// TestAuditEventsFilters checks each filter of AuditEventWhere against
// the recorded events.
func TestAuditEventsFilters(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, _ := auditEnv(t, at.api)
	y := at.yesterday
	day := func(ev *audit.Event) bool { return !ev.Time.Before(y) && ev.Time.Before(y.Add(24*time.Hour)) }
	hasDetector := func(ev *audit.Event, d string) bool {
		return slices.ContainsFunc(ev.Findings, func(f audit.Finding) bool { return f.Detector == d })
	}
	for _, tc := range []struct {
		name  string
		where map[string]any
		match func(*audit.Event) bool
	}{
		{"day", map[string]any{"from": y, "to": y.Add(24 * time.Hour)}, day},
		{"from is inclusive", map[string]any{"from": y.Add(10 * time.Hour), "to": y.Add(10*time.Hour + time.Minute)},
			func(ev *audit.Event) bool { return ev.Time.Equal(y.Add(10 * time.Hour)) }},
		{"kind", map[string]any{"kind": "approval"}, func(ev *audit.Event) bool { return ev.Kind == audit.KindApproval }},
		{"agent and day", map[string]any{"agent": "claude@alice", "from": y, "to": y.Add(24 * time.Hour)},
			func(ev *audit.Event) bool { return ev.Agent == "claude@alice" && day(ev) }},
		{"team", map[string]any{"team": "finance"}, func(ev *audit.Event) bool { return ev.Team == "finance" }},
		{"virtualServer", map[string]any{"virtualServer": "ops"}, func(ev *audit.Event) bool { return ev.VirtualServer == "ops" }},
		{"upstream", map[string]any{"upstream": "postgres"}, func(ev *audit.Event) bool { return ev.Upstream == "postgres" }},
		{"method", map[string]any{"method": "approval/decided"}, func(ev *audit.Event) bool { return ev.Method == "approval/decided" }},
		{"target", map[string]any{"target": "deploy"}, func(ev *audit.Event) bool { return ev.Target == "deploy" }},
		{"decision", map[string]any{"decision": "deny"}, func(ev *audit.Event) bool { return ev.Decision == "deny" }},
		{"outcome", map[string]any{"outcome": "tool_error"}, func(ev *audit.Event) bool { return ev.Outcome == audit.OutcomeToolError }},
		{"approvalID", map[string]any{"approvalID": "apr-2"}, func(ev *audit.Event) bool { return ev.ApprovalID == "apr-2" }},
		{"requestID", map[string]any{"requestID": "req-gh-3"}, func(ev *audit.Event) bool { return ev.RequestID == "req-gh-3" }},
		{"sessionID", map[string]any{"sessionID": "sess-ci-2"}, func(ev *audit.Event) bool { return ev.SessionID == "sess-ci-2" }},
		{"detector", map[string]any{"detector": "injection"}, func(ev *audit.Event) bool { return hasDetector(ev, "injection") }},
		{"blocked for injection", map[string]any{"outcome": "blocked", "detector": "injection"},
			func(ev *audit.Event) bool { return ev.Outcome == audit.OutcomeBlocked && hasDetector(ev, "injection") }},
		{"no match", map[string]any{"agent": "ci-bot", "team": "finance"}, func(*audit.Event) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, _ := e.auditPages(e.admin, tc.where, "", 1000)
			want := at.expectIDs(false, tc.match)
			if !slices.Equal(ids, want) {
				t.Errorf("got %d events %v\nwant %d %v", len(ids), ids, len(want), want)
			}
			if len(want) == 0 && tc.name != "no match" {
				t.Error("the filter matches no event of the fixture")
			}
		})
	}

	// Bad arguments are INVALID, naming the argument.
	for _, tc := range []struct {
		vars  map[string]any
		field string
	}{
		{map[string]any{"n": 0}, "first"},
		{map[string]any{"n": 1001}, "first"},
		{map[string]any{"a": "not-a-cursor"}, "after"},
		{map[string]any{"w": map[string]any{"from": y, "to": y}}, "where.to"},
	} {
		errs := e.fails(auditEventsQuery, tc.vars)
		if errs[0].Extensions["code"] != "INVALID" || errs[0].Extensions["field"] != tc.field {
			t.Errorf("%v: %+v, want INVALID on %s", tc.vars, errs, tc.field)
		}
	}
}

// TestAuditStats groups requests by upstream (and by agent and outcome
// per hour) and checks the counters against the recorded events.
func TestAuditStats(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, _ := auditEnv(t, at.api)
	y := at.yesterday
	where := map[string]any{"from": y, "to": y.Add(24 * time.Hour)}
	type stat struct {
		Bucket                                        *time.Time
		Group                                         []string
		Calls, Denials, Errors, ToolErrors, Approvals int
		P50Us, P90Us, P99Us                           float64
	}
	var out struct{ AuditStats []stat }
	e.must(`query($w: AuditEventWhere) { auditStats(groupBy: [UPSTREAM], where: $w) {
	  bucket group calls denials errors toolErrors approvals p50Us p90Us p99Us } }`, map[string]any{"w": where}, &out)
	want := map[string]stat{}
	for _, ev := range at.events {
		if ev.Kind != audit.KindRequest || ev.Time.Before(y) || !ev.Time.Before(y.Add(24*time.Hour)) {
			continue
		}
		s := want[ev.Upstream]
		s.Calls++
		switch {
		case slices.Contains(audit.DenialOutcomes, ev.Outcome):
			s.Denials++
		case ev.Outcome == audit.OutcomeToolError:
			s.ToolErrors++
		case slices.Contains(audit.ErrorOutcomes, ev.Outcome):
			s.Errors++
		}
		if ev.ApprovalID != "" {
			s.Approvals++
		}
		want[ev.Upstream] = s
	}
	if len(out.AuditStats) != len(want) {
		t.Fatalf("%d groups, want %d: %+v", len(out.AuditStats), len(want), out.AuditStats)
	}
	for i, s := range out.AuditStats {
		if len(s.Group) != 1 || s.Bucket != nil {
			t.Fatalf("stat %d: %+v", i, s)
		}
		if i > 0 && out.AuditStats[i-1].Group[0] >= s.Group[0] {
			t.Errorf("groups out of order: %v then %v", out.AuditStats[i-1].Group, s.Group)
		}
		w := want[s.Group[0]]
		if s.Calls != w.Calls || s.Denials != w.Denials || s.Errors != w.Errors || s.ToolErrors != w.ToolErrors || s.Approvals != w.Approvals {
			t.Errorf("upstream %s: %+v, want %+v", s.Group[0], s, w)
		}
		if !(s.P50Us <= s.P90Us && s.P90Us <= s.P99Us && s.P50Us > 0) {
			t.Errorf("upstream %s: quantiles %v %v %v", s.Group[0], s.P50Us, s.P90Us, s.P99Us)
		}
		if s.Group[0] == "github" && (s.P50Us != 1500 || s.P99Us != 1500) {
			t.Errorf("github: every call took 1500 µs, quantiles %v %v", s.P50Us, s.P99Us)
		}
	}

	// Hourly, by agent and outcome: every bucket is a whole hour of that
	// day and the calls add up.
	e.must(`query($w: AuditEventWhere) { auditStats(groupBy: [AGENT, OUTCOME], interval: "1h", where: $w) {
	  bucket group calls denials errors toolErrors approvals p50Us p90Us p99Us } }`, map[string]any{"w": where}, &out)
	total, wantTotal := 0, 0
	for _, w := range want {
		wantTotal += w.Calls
	}
	for _, s := range out.AuditStats {
		total += s.Calls
		if s.Bucket == nil || s.Bucket.Before(y) || !s.Bucket.Before(y.Add(24*time.Hour)) || !s.Bucket.Equal(s.Bucket.Truncate(time.Hour)) || len(s.Group) != 2 {
			t.Errorf("hourly stat %+v", s)
		}
	}
	if total != wantTotal {
		t.Errorf("hourly calls add up to %d, want %d", total, wantTotal)
	}
	if i := slices.IndexFunc(out.AuditStats, func(s stat) bool {
		return s.Bucket.Equal(y.Add(10*time.Hour)) && slices.Equal(s.Group, []string{"ci-bot", "tool_error"})
	}); i < 0 || out.AuditStats[i].Calls != 4 || out.AuditStats[i].ToolErrors != 4 {
		t.Errorf("ci-bot's tool errors at 10:00: %+v", out.AuditStats)
	}

	// Days are an interval; bad intervals are INVALID.
	e.must(`{ auditStats(interval: "1d") { bucket calls } }`, nil, &out)
	if len(out.AuditStats) != 2 { // load-bot's day and yesterday
		t.Errorf("daily: %+v", out.AuditStats)
	}
	for _, iv := range []string{"0s", "1.5s", "500ms", "abc", "-1h", "0d"} {
		errs := e.fails(`query($i: String) { auditStats(interval: $i) { calls } }`, map[string]any{"i": iv})
		if errs[0].Extensions["code"] != "INVALID" || errs[0].Extensions["field"] != "interval" {
			t.Errorf("interval %q: %+v", iv, errs)
		}
	}
}

// TestAuditVerify verifies the writer's chain (intact, checkpoints signed)
// and a tampered one (a deleted and a modified event).
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	const q = `query($n: String) { auditVerify(node: $n) { node events checkpoints lastSeq ok problems { node seq kind detail } } }`
	type report struct {
		Node                         string
		Events, Checkpoints, LastSeq int
		OK                           bool `json:"ok"`
		Problems                     []struct {
			Node, Kind, Detail string
			Seq                int
		}
	}
	var out struct{ AuditVerify []report }

	e, _ := auditEnv(t, at.api)
	e.must(q, nil, &out)
	if len(out.AuditVerify) != 1 {
		t.Fatalf("reports: %+v", out.AuditVerify)
	}
	r := out.AuditVerify[0]
	if r.Node != "gw1" || !r.OK || len(r.Problems) != 0 || r.Events != len(at.events) || r.LastSeq != len(at.events) || r.Checkpoints < 1 {
		t.Errorf("gw1: %+v", r)
	}
	e.must(q, map[string]any{"n": "gw1"}, &out)
	if len(out.AuditVerify) != 1 || !out.AuditVerify[0].OK {
		t.Errorf("gw1 by name: %+v", out.AuditVerify)
	}
	// A node that recorded nothing is not a verified chain.
	if errs := e.fails(q, map[string]any{"n": "gw-typo"}); errs[0].Extensions["code"] != "NOT_FOUND" || !strings.Contains(errs[0].Message, `node "gw-typo" (nodes with events: gw1)`) {
		t.Errorf("unknown node: %+v", errs)
	}

	bad, _ := auditEnv(t, at.tampered)
	bad.must(q, nil, &out)
	if len(out.AuditVerify) != 1 || out.AuditVerify[0].OK || out.AuditVerify[0].Node != "gw9" {
		t.Fatalf("tampered: %+v", out.AuditVerify)
	}
	kinds := map[string]int{}
	for _, p := range out.AuditVerify[0].Problems {
		kinds[p.Kind] = p.Seq
		if p.Node != "gw9" || p.Detail == "" {
			t.Errorf("problem %+v", p)
		}
	}
	if kinds["gap"] != 4 || kinds["modified"] != 4 {
		t.Errorf("problems %+v, want a gap before seq 4 and seq 4 modified", out.AuditVerify[0].Problems)
	}
}

// TestAuditOff: with no audit trail, the audit fields answer UNAVAILABLE
// saying it is off.
func TestAuditOff(t *testing.T) {
	t.Parallel()
	e, _ := auditEnv(t, nil)
	var typedNil *audit.API
	e2, _ := auditEnv(t, typedNil)
	for _, env := range []*env{e, e2} {
		for _, q := range []string{
			`{ auditEvents { edges { cursor } } }`,
			`{ auditStats { calls } }`,
			`{ auditVerify { node } }`,
		} {
			errs := env.fails(q, nil)
			if len(errs) != 1 || errs[0].Extensions["code"] != "UNAVAILABLE" || !strings.Contains(errs[0].Message, "serve --audit off") {
				t.Errorf("%s: %+v", q, errs)
			}
		}
	}
}
