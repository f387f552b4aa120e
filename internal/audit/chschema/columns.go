package chschema

import (
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// EventColumn is one column of audit_events and how to read it from an
// [audit.Event].
type EventColumn struct {
	// Name is the column name, which is also the Event field's JSON name.
	Name string
	// Value is the field's value as the server backend appends it.
	Value func(e *audit.Event) any
}

// EventColumns are the columns of audit_events, in table order. The DDL
// (schema/clickhouse/001_audit_events.sql) declares their types; the
// tests check that these names, the Event JSON tags and the table's
// columns are the same list.
var EventColumns = []EventColumn{
	{"time", func(e *audit.Event) any { return e.Time.UTC().Truncate(time.Microsecond) }},
	{"event_id", func(e *audit.Event) any { return e.EventID }},
	{"node", func(e *audit.Event) any { return e.Node }},
	{"seq", func(e *audit.Event) any { return e.Seq }},
	{"prev_hash", func(e *audit.Event) any { return e.PrevHash }},
	{"hash", func(e *audit.Event) any { return e.Hash }},
	{"kind", func(e *audit.Event) any { return e.Kind }},
	{"request_id", func(e *audit.Event) any { return e.RequestID }},
	{"session_id", func(e *audit.Event) any { return e.SessionID }},
	{"agent", func(e *audit.Event) any { return e.Agent }},
	{"team", func(e *audit.Event) any { return e.Team }},
	{"roles", func(e *audit.Event) any { return strings0(e.Roles) }},
	{"auth_method", func(e *audit.Event) any { return e.AuthMethod }},
	{"virtual_server", func(e *audit.Event) any { return e.VirtualServer }},
	{"upstream", func(e *audit.Event) any { return e.Upstream }},
	{"method", func(e *audit.Event) any { return e.Method }},
	{"target", func(e *audit.Event) any { return e.Target }},
	{"arguments", func(e *audit.Event) any { return e.Arguments }},
	{"args_hash", func(e *audit.Event) any { return e.ArgsHash }},
	{"decision", func(e *audit.Event) any { return e.Decision }},
	{"grants", func(e *audit.Event) any { return strings0(e.Grants) }},
	{"rule", func(e *audit.Event) any { return e.Rule }},
	{"policy_revision", func(e *audit.Event) any { return e.PolicyRevision }},
	{"findings", func(e *audit.Event) any {
		if e.Findings == nil {
			return []audit.Finding{}
		}
		return e.Findings
	}},
	{"approval_id", func(e *audit.Event) any { return e.ApprovalID }},
	{"approvers", func(e *audit.Event) any { return strings0(e.Approvers) }},
	{"secret_bindings", func(e *audit.Event) any { return strings0(e.SecretBindings) }},
	{"lease_ids", func(e *audit.Event) any { return strings0(e.LeaseIDs) }},
	{"outcome", func(e *audit.Event) any { return e.Outcome }},
	{"error_code", func(e *audit.Event) any { return e.ErrorCode }},
	{"error", func(e *audit.Event) any { return e.Error }},
	{"auth_us", func(e *audit.Event) any { return e.AuthUs }},
	{"policy_us", func(e *audit.Event) any { return e.PolicyUs }},
	{"guard_us", func(e *audit.Event) any { return e.GuardUs }},
	{"approval_us", func(e *audit.Event) any { return e.ApprovalUs }},
	{"upstream_us", func(e *audit.Event) any { return e.UpstreamUs }},
	{"total_us", func(e *audit.Event) any { return e.TotalUs }},
	{"request_bytes", func(e *audit.Event) any { return e.RequestBytes }},
	{"response_bytes", func(e *audit.Event) any { return e.ResponseBytes }},
}

// EventColumnNames are the names of [EventColumns], comma-separated, for
// an INSERT column list.
func EventColumnNames() string {
	b := make([]byte, 0, 512)
	for i, c := range EventColumns {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, quoteIdent(c.Name)...)
	}
	return string(b)
}

func strings0(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
