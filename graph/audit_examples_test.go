package graph_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// auditExamples are the audit queries the README shows, in GraphQL and in
// SQL (POST /audit/query, gatehouse audit query), each answering one
// question. The GraphQL ones name yesterday as 2026-11-29 (and today as
// 2026-11-30); the test substitutes the fixture's days.
var auditExamples = []struct {
	question string
	graphql  string
	sql      string
	// check verifies both answers against the fixture: data is the
	// GraphQL data, rows the SQL result's rows.
	check func(t *testing.T, data json.RawMessage, rows [][]any)
}{
	{
		question: "What did agent ci-bot do yesterday?",
		graphql: `query { auditEvents(where: {agent: "ci-bot", from: "2026-11-29T00:00:00Z", to: "2026-11-30T00:00:00Z"},
    orderBy: TIME_ASC, first: 1000) {
  edges { node { time virtualServer method target arguments decision rule outcome totalUs } }
  pageInfo { hasNextPage endCursor } } }`,
		sql: `SELECT time, virtual_server, method, target, decision, outcome, total_us
FROM audit_events
WHERE agent = 'ci-bot' AND toDate(time) = yesterday()
ORDER BY time`,
		check: func(t *testing.T, data json.RawMessage, rows [][]any) {
			var out struct {
				AuditEvents struct {
					Edges []struct {
						Node struct{ Target, Outcome string }
					}
					PageInfo struct{ HasNextPage bool }
				}
			}
			mustDecode(t, data, &out)
			if len(out.AuditEvents.Edges) != 24 || out.AuditEvents.PageInfo.HasNextPage || out.AuditEvents.Edges[0].Node.Target != "github.create_issue" {
				t.Errorf("graphql: %s", data)
			}
			if len(rows) != 24 || rows[0][3] != "github.create_issue" || rows[23][3] != "postgres.drop" {
				t.Errorf("sql: %v", rows)
			}
		},
	},
	{
		question: "Who approved calls to the tool deploy?",
		graphql: `query { auditEvents(where: {kind: "approval", method: "approval/decided", target: "deploy", decision: "approve"}) {
  edges { node { time approvalID agent approvers } } } }`,
		sql: `SELECT time, approval_id, agent, arrayJoin(approvers) AS approver
FROM audit_events
WHERE kind = 'approval' AND method = 'approval/decided' AND target = 'deploy' AND decision = 'approve'
ORDER BY time`,
		check: func(t *testing.T, data json.RawMessage, rows [][]any) {
			var out struct {
				AuditEvents struct {
					Edges []struct {
						Node struct {
							ApprovalID string `json:"approvalID"`
							Approvers  []string
						}
					}
				}
			}
			mustDecode(t, data, &out)
			if e := out.AuditEvents.Edges; len(e) != 1 || e[0].Node.ApprovalID != "apr-1" || len(e[0].Node.Approvers) != 1 || e[0].Node.Approvers[0] != "token:bob" {
				t.Errorf("graphql: %s", data)
			}
			if len(rows) != 1 || rows[0][1] != "apr-1" || rows[0][3] != "token:bob" {
				t.Errorf("sql: %v", rows)
			}
		},
	},
	{
		question: "Which calls were blocked for prompt injection?",
		graphql: `query { auditEvents(where: {outcome: "blocked", detector: "injection"}) {
  edges { node { time agent virtualServer target rule findings { rule kind path action } } } } }`,
		sql: `SELECT time, agent, target, rule, arrayFilter(f -> f.detector = 'injection', findings) AS injections
FROM audit_events
WHERE outcome = 'blocked' AND arrayExists(f -> f.detector = 'injection', findings)
ORDER BY time DESC`,
		check: func(t *testing.T, data json.RawMessage, rows [][]any) {
			var out struct {
				AuditEvents struct {
					Edges []struct {
						Node struct {
							Target   string
							Findings []struct{ Kind, Action string }
						}
					}
				}
			}
			mustDecode(t, data, &out)
			if e := out.AuditEvents.Edges; len(e) != 3 || e[0].Node.Target != "postgres.query" || e[0].Node.Findings[0].Kind != "prompt_injection" {
				t.Errorf("graphql: %s", data)
			}
			if len(rows) != 3 || rows[0][2] != "postgres.query" || len(rows[0][4].([]any)) != 1 {
				t.Errorf("sql: %v", rows)
			}
		},
	},
	{
		question: "What is the p99 latency per upstream (yesterday)?",
		graphql: `query { auditStats(groupBy: [UPSTREAM], where: {from: "2026-11-29T00:00:00Z", to: "2026-11-30T00:00:00Z"}) {
  group calls errors p50Us p99Us } }`,
		sql: `SELECT upstream, count() AS calls, quantile(0.99)(total_us) AS p99_us
FROM audit_events
WHERE kind = 'request' AND toDate(time) = yesterday()
GROUP BY upstream
ORDER BY p99_us DESC`,
		check: func(t *testing.T, data json.RawMessage, rows [][]any) {
			var out struct {
				AuditStats []struct {
					Group []string
					Calls int
					P99Us float64
				}
			}
			mustDecode(t, data, &out)
			found := false
			for _, s := range out.AuditStats {
				if s.Group[0] == "github" {
					found = s.Calls == 20 && s.P99Us == 1500
				}
			}
			if len(out.AuditStats) != 4 || !found {
				t.Errorf("graphql: %s", data)
			}
			if len(rows) != 4 || rows[0][0] != "deployer" || rows[3][0] != "postgres" {
				t.Errorf("sql: %v", rows)
			}
		},
	},
}

func mustDecode(t *testing.T, data json.RawMessage, out any) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// TestAuditExamples runs the README's audit queries as an auditor
// against the fixture.
func TestAuditExamples(t *testing.T) {
	t.Parallel()
	at := loadAuditTrail(t)
	e, opts := auditEnv(t, at.api)
	srv := auditServer(t, e, opts)
	days := strings.NewReplacer("2026-11-29", at.yesterday.Format(time.DateOnly), "2026-11-30", at.yesterday.Add(24*time.Hour).Format(time.DateOnly))
	for _, ex := range auditExamples {
		t.Run(ex.question, func(t *testing.T) {
			status, resp := e.post(e.auditor, days.Replace(ex.graphql), nil)
			if status != 200 || len(resp.Errors) > 0 {
				t.Fatalf("graphql: HTTP %d %+v", status, resp.Errors)
			}
			status, body, code, msg := call(t, srv, "POST", "/audit/query", e.auditor, "", ex.sql)
			if status != 200 {
				t.Fatalf("sql: HTTP %d %s %s", status, code, msg)
			}
			var res struct{ Rows [][]any }
			mustDecode(t, json.RawMessage(body), &res)
			ex.check(t, resp.Data, res.Rows)
		})
	}
}
