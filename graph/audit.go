package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/gatehouse-dev/gatehouse/graph/model"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// AuditAPI is the read side of the audit trail that auditEvents,
// auditStats, auditVerify and the auditors' HTTP endpoints
// ([NewAuditHandler]) use. [audit.API] is the implementation.
type AuditAPI interface {
	// Events lists events matching f, newest first (oldest first with
	// asc), first of them after the cursor of a previous page.
	Events(ctx context.Context, f audit.Filter, asc bool, first int, after string) (*audit.Page, error)
	// Stats aggregates requests by the groupBy columns
	// ([audit.StatsGroupBy]) and, when interval is positive, time buckets.
	Stats(ctx context.Context, groupBy []string, interval time.Duration, f audit.Filter) ([]audit.Stat, error)
	// Query runs an auditor's read-only SQL, refusing what
	// [audit.CheckSQL] refuses.
	Query(ctx context.Context, sql string) (*audit.Result, error)
	// Verify checks the hash chain of node ("": of every node).
	Verify(ctx context.Context, node string) ([]*audit.VerifyReport, error)
}

var _ AuditAPI = (*audit.API)(nil)

// ErrAuditOff is the error of the audit fields and endpoints when the API
// has no audit trail ([HandlerOptions].Audit is nil).
var ErrAuditOff = errors.New("the audit trail is off (serve --audit off)")

// Bounds of auditEvents' first.
const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// auditAPI returns the audit trail, or an UNAVAILABLE error when it is
// off.
func (r *Resolver) auditAPI(ctx context.Context) (AuditAPI, error) {
	if r.Audit == nil {
		return nil, &gqlerror.Error{Path: graphql.GetPath(ctx), Message: ErrAuditOff.Error(),
			Extensions: map[string]any{"code": codeUnavailable}}
	}
	return r.Audit, nil
}

func (r *Resolver) auditEvents(ctx context.Context, where *model.AuditEventWhere, orderBy *model.AuditOrder, first *int, after *string) (*model.AuditEventConnection, error) {
	a, err := r.auditAPI(ctx)
	if err != nil {
		return nil, err
	}
	n := defaultAuditPage
	if first != nil {
		n = *first
	}
	if n < 1 || n > maxAuditPage {
		return nil, fieldError(ctx, "first", codeInvalid, "first must be between 1 and %d", maxAuditPage)
	}
	f, err := auditFilter(ctx, where)
	if err != nil {
		return nil, err
	}
	var cursor string
	if after != nil {
		cursor = *after
		if _, _, err := audit.DecodeCursor(cursor); err != nil {
			return nil, fieldError(ctx, "after", codeInvalid, "after: not a cursor of auditEvents (pass an edge's cursor or pageInfo.endCursor)")
		}
	}
	asc := orderBy != nil && *orderBy == model.AuditOrderTimeAsc
	page, err := a.Events(ctx, f, asc, n, cursor)
	if err != nil {
		return nil, auditError(err)
	}
	conn := &model.AuditEventConnection{Edges: make([]*model.AuditEventEdge, len(page.Events)), PageInfo: &model.AuditPageInfo{HasNextPage: page.Next != ""}}
	for i := range page.Events {
		e := &page.Events[i]
		conn.Edges[i] = &model.AuditEventEdge{Cursor: audit.EventCursor(e), Node: auditEventModel(e)}
	}
	if len(conn.Edges) > 0 {
		conn.PageInfo.EndCursor = &conn.Edges[len(conn.Edges)-1].Cursor
	}
	return conn, nil
}

func (r *Resolver) auditStats(ctx context.Context, groupBy []model.AuditGroupBy, interval *string, where *model.AuditEventWhere) ([]*model.AuditStat, error) {
	a, err := r.auditAPI(ctx)
	if err != nil {
		return nil, err
	}
	var iv time.Duration
	if interval != nil {
		if iv, err = parseInterval(*interval); err != nil {
			return nil, fieldError(ctx, "interval", codeInvalid, "interval: %v", err)
		}
	}
	f, err := auditFilter(ctx, where)
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(groupBy))
	for i, g := range groupBy {
		cols[i] = strings.ToLower(string(g)) // VIRTUAL_SERVER is the column virtual_server
	}
	stats, err := a.Stats(ctx, cols, iv, f)
	if err != nil {
		return nil, auditError(err)
	}
	out := make([]*model.AuditStat, len(stats))
	for i, s := range stats {
		m := &model.AuditStat{Group: s.Group, Calls: int(s.Calls), Denials: int(s.Denials), Errors: int(s.Errors),
			ToolErrors: int(s.ToolErrors), Approvals: int(s.Approvals), P50Us: s.P50, P90Us: s.P90, P99Us: s.P99}
		if m.Group == nil {
			m.Group = []string{}
		}
		if iv > 0 {
			b := s.Bucket
			m.Bucket = &b
		}
		out[i] = m
	}
	return out, nil
}

func (r *Resolver) auditVerify(ctx context.Context, node *string) ([]*model.AuditVerifyReport, error) {
	a, err := r.auditAPI(ctx)
	if err != nil {
		return nil, err
	}
	var n string
	if node != nil {
		n = *node
	}
	reports, err := a.Verify(ctx, n)
	if err != nil {
		return nil, auditError(err)
	}
	out := make([]*model.AuditVerifyReport, len(reports))
	for i, rep := range reports {
		m := &model.AuditVerifyReport{Node: rep.Node, Events: int(rep.Events), Checkpoints: rep.Checkpoints, LastSeq: int(rep.LastSeq),
			Ok: len(rep.Problems) == 0, Problems: make([]*model.AuditProblem, len(rep.Problems))}
		for j, p := range rep.Problems {
			m.Problems[j] = &model.AuditProblem{Node: p.Node, Seq: int(p.Seq), Kind: p.Kind, Detail: p.Detail}
		}
		out[i] = m
	}
	return out, nil
}

// auditError marks a failure to reach the audit backend UNAVAILABLE;
// other errors pass (they say what the backend refused).
func auditError(err error) error {
	if une := (*audit.UnknownNodeError)(nil); errors.As(err, &une) {
		return &gqlerror.Error{Err: err, Message: une.Error(), Extensions: map[string]any{"code": codeNotFound, "field": "node"}}
	}
	if errors.Is(err, audit.ErrUnavailable) {
		return &gqlerror.Error{Err: err, Message: "the audit trail's ClickHouse is unavailable: " + err.Error(),
			Extensions: map[string]any{"code": codeUnavailable}}
	}
	return err
}

// auditFilter converts where (nil: everything) to an [audit.Filter].
func auditFilter(ctx context.Context, where *model.AuditEventWhere) (audit.Filter, error) {
	var f audit.Filter
	if where == nil {
		return f, nil
	}
	if where.From != nil {
		f.From = *where.From
	}
	if where.To != nil {
		f.To = *where.To
	}
	if where.From != nil && where.To != nil && !f.To.After(f.From) {
		return f, fieldError(ctx, "where.to", codeInvalid, "where.to must be after where.from")
	}
	for _, s := range []struct {
		dst *string
		v   *string
	}{
		{&f.Kind, where.Kind}, {&f.Agent, where.Agent}, {&f.Team, where.Team}, {&f.VirtualServer, where.VirtualServer},
		{&f.Upstream, where.Upstream}, {&f.Method, where.Method}, {&f.Target, where.Target}, {&f.Decision, where.Decision},
		{&f.Outcome, where.Outcome}, {&f.ApprovalID, where.ApprovalID}, {&f.RequestID, where.RequestID},
		{&f.SessionID, where.SessionID}, {&f.Detector, where.Detector},
	} {
		if s.v != nil {
			*s.dst = *s.v
		}
	}
	return f, nil
}

// parseInterval reads an auditStats interval: a Go duration ("30s", "5m",
// "1h30m") or whole days ("7d"), at least a second and in whole seconds.
// "" means no interval (0).
func parseInterval(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 1h, 1d)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 1h, 1d)", s)
		}
	}
	if d < time.Second || d%time.Second != 0 {
		return 0, fmt.Errorf("%q: want whole seconds, at least 1s", s)
	}
	return d, nil
}

// auditEventModel is e as the admin API returns it.
func auditEventModel(e *audit.Event) *model.AuditEvent {
	m := &model.AuditEvent{
		Time: e.Time, EventID: e.EventID, Node: e.Node, Seq: int(e.Seq), PrevHash: e.PrevHash, Hash: e.Hash,
		Kind: e.Kind, RequestID: e.RequestID, SessionID: e.SessionID,
		Agent: e.Agent, Team: e.Team, Roles: nonNil(e.Roles), AuthMethod: e.AuthMethod,
		VirtualServer: e.VirtualServer, Upstream: e.Upstream, Method: e.Method, Target: e.Target,
		Arguments: rawArguments(e.Arguments), ArgsHash: e.ArgsHash,
		Decision: e.Decision, Grants: nonNil(e.Grants), Rule: e.Rule, PolicyRevision: int(e.PolicyRevision),
		Findings:   make([]*model.AuditFinding, len(e.Findings)),
		ApprovalID: e.ApprovalID, Approvers: nonNil(e.Approvers), SecretBindings: nonNil(e.SecretBindings), LeaseIDs: nonNil(e.LeaseIDs),
		Outcome: e.Outcome, ErrorCode: int(e.ErrorCode), Error: e.Error,
		AuthUs: int(e.AuthUs), PolicyUs: int(e.PolicyUs), GuardUs: int(e.GuardUs), ApprovalUs: int(e.ApprovalUs),
		UpstreamUs: int(e.UpstreamUs), TotalUs: int(e.TotalUs), RequestBytes: int(e.RequestBytes), ResponseBytes: int(e.ResponseBytes),
	}
	for i, f := range e.Findings {
		m.Findings[i] = &model.AuditFinding{Rule: f.Rule, Detector: f.Detector, Kind: f.Kind, Path: f.Path, Action: f.Action,
			Start: int(f.Start), End: int(f.End)}
	}
	return m
}

// rawArguments is the recorded arguments as the JSON scalar: null when
// empty, a JSON string when they are not JSON (so nothing is lost).
func rawArguments(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
