// Package audit records what agents, admins and approvers did, so that
// "what exactly did this agent do?" has a complete, provable answer.
//
// Every audited action becomes an [Event]. Events are appended to a local
// spool (internal/audit/spool) before the action is acknowledged, chained
// by hash per gateway node, and shipped in batches to ClickHouse: a server
// or cluster (clickhouse-go, native protocol) or the embedded engine
// (chDB's libchdb.so), behind one [Backend] interface and one schema
// (schema/clickhouse/*.sql).
package audit

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/spool"
)

// Event kinds.
const (
	KindRequest  = "request"  // one agent request (initialize, list, call, read, get, complete, ...)
	KindAdmin    = "admin"    // one admin API change
	KindApproval = "approval" // one approval step (requested, decided, escalated, executed, closed)
)

// Outcomes of a request. Denials are denied, blocked, rate_limited and
// approval_required; errors are error, unavailable, timeout,
// secret_unavailable, approval_unavailable and audit_unavailable (the
// rollups and Stats count them so).
const (
	OutcomeOK                  = "ok"
	OutcomeToolError           = "tool_error"           // the tool answered with isError
	OutcomeDenied              = "denied"               // refused by a grant
	OutcomeBlocked             = "blocked"              // refused by a guardrail
	OutcomeRateLimited         = "rate_limited"         // refused by a rate limit
	OutcomeApprovalRequired    = "approval_required"    // needs approval, which this gateway cannot hold
	OutcomeError               = "error"                // another JSON-RPC error (ErrorCode says which)
	OutcomeUnavailable         = "unavailable"          // the upstream is down
	OutcomeTimeout             = "timeout"              // the upstream did not answer in time
	OutcomeSecretUnavailable   = "secret_unavailable"   // a secret could not be fetched
	OutcomeApprovalUnavailable = "approval_unavailable" // the approval service could not take the call
	OutcomeAuditUnavailable    = "audit_unavailable"    // the event could not be stored: not acknowledged
	OutcomeCancelled           = "cancelled"            // the agent cancelled
)

// DenialOutcomes and ErrorOutcomes classify outcomes as denials and
// errors, for Stats and the per-minute rollups (which use the same lists).
var (
	DenialOutcomes = []string{OutcomeDenied, OutcomeBlocked, OutcomeRateLimited, OutcomeApprovalRequired}
	ErrorOutcomes  = []string{OutcomeError, OutcomeUnavailable, OutcomeTimeout, OutcomeSecretUnavailable,
		OutcomeApprovalUnavailable, OutcomeAuditUnavailable}
)

// Finding is a guardrail finding as audit keeps it: where and what, never
// the matched text.
type Finding struct {
	Rule     string `json:"rule"`
	Detector string `json:"detector"`
	Kind     string `json:"kind"`
	Path     string `json:"path"`
	Action   string `json:"action"`
	Start    uint32 `json:"start"`
	End      uint32 `json:"end"`
}

// Event is one audited action. Its JSON encoding (the field tags) is the
// row format of the events table (JSONEachRow) and the spool's record
// format. Secret values never appear: only binding names and lease IDs.
type Event struct {
	// Time is when the action started, with microsecond precision.
	Time time.Time `json:"time"`
	// EventID is unique across nodes: Node and Seq.
	EventID string `json:"event_id"`
	// Node is the gateway node that recorded the event; Seq numbers its
	// events from 1 without gaps, and PrevHash/Hash chain them (see
	// [Chain]).
	Node     string `json:"node"`
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`

	Kind      string `json:"kind"`
	RequestID string `json:"request_id"`
	SessionID string `json:"session_id"`

	// Who: the principal.
	Agent      string   `json:"agent"`
	Team       string   `json:"team"`
	Roles      []string `json:"roles"`
	AuthMethod string   `json:"auth_method"`

	// What: the virtual server, upstream, MCP method and target (tool,
	// resource URI, prompt name); admin events put the entity in Target
	// and the operation in Method.
	VirtualServer string `json:"virtual_server"`
	Upstream      string `json:"upstream"`
	Method        string `json:"method"`
	Target        string `json:"target"`
	// Arguments are the redacted arguments (JSON); ArgsHash is the hash
	// of the canonical unredacted ones.
	Arguments string `json:"arguments"`
	ArgsHash  string `json:"args_hash"`

	// Decision and why.
	Decision       string    `json:"decision"`
	Grants         []string  `json:"grants"`
	Rule           string    `json:"rule"`
	PolicyRevision int64     `json:"policy_revision"`
	Findings       []Finding `json:"findings"`

	// Approval and secrets.
	ApprovalID     string   `json:"approval_id"`
	Approvers      []string `json:"approvers"`
	SecretBindings []string `json:"secret_bindings"`
	LeaseIDs       []string `json:"lease_ids"`

	// Outcome.
	Outcome   string `json:"outcome"`
	ErrorCode int32  `json:"error_code"`
	Error     string `json:"error"`

	// Latency breakdown, microseconds.
	AuthUs     uint32 `json:"auth_us"`
	PolicyUs   uint32 `json:"policy_us"`
	GuardUs    uint32 `json:"guard_us"`
	ApprovalUs uint64 `json:"approval_us"`
	UpstreamUs uint64 `json:"upstream_us"`
	TotalUs    uint64 `json:"total_us"`

	RequestBytes  uint64 `json:"request_bytes"`
	ResponseBytes uint64 `json:"response_bytes"`
}

// Errors backends and the writer return.
var (
	// ErrUnavailable wraps failures to reach the backend.
	ErrUnavailable = errors.New("audit backend unavailable")
	// ErrSpoolFull is returned when the spool reached its disk budget and
	// the policy is to refuse new events (and so the calls they record).
	ErrSpoolFull = spool.ErrFull
)

// Column describes one result column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is the result of a query: columns and rows of JSON-compatible
// values (numbers, strings, arrays, null).
type Result struct {
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// QueryOptions bound a query run for a user.
type QueryOptions struct {
	// ReadOnly runs the query with readonly=1.
	ReadOnly bool
	// MaxRows bounds the result (result_overflow_mode=throw beyond it); 0
	// means no limit.
	MaxRows int
	// Timeout bounds execution (max_execution_time); 0 means none.
	Timeout time.Duration
	// MaxMemory bounds the memory the query may use (max_memory_usage),
	// in bytes; 0 means the backend's default. The embedded engine runs
	// in the gateway's process: an auditor's query must not take it all.
	MaxMemory int64
}

// ExecutionLimit is the max_execution_time of one query.
type ExecutionLimit struct {
	// Timeout is the limit in whole milliseconds (ClickHouse's
	// precision), rounded up so that a query is not stopped before ctx's
	// deadline by rounding; 0 means none.
	Timeout time.Duration
	// FromDeadline says ctx's deadline set Timeout (it was nearer than
	// QueryOptions.Timeout).
	FromDeadline bool
}

// ExecutionLimit is the execution time limit of a query run with o under
// ctx: the shorter of o.Timeout and the time left before ctx's deadline.
// A deadline already passed is an error.
func (o QueryOptions) ExecutionLimit(ctx context.Context) (ExecutionLimit, error) {
	l := ExecutionLimit{Timeout: o.Timeout}
	if dl, ok := ctx.Deadline(); ok {
		rem := time.Until(dl)
		if rem <= 0 {
			return ExecutionLimit{}, context.DeadlineExceeded
		}
		if l.Timeout <= 0 || rem < l.Timeout {
			l = ExecutionLimit{Timeout: rem, FromDeadline: true}
		}
	}
	if l.Timeout <= 0 {
		return ExecutionLimit{}, nil
	}
	l.Timeout = (l.Timeout + time.Millisecond - 1).Truncate(time.Millisecond)
	return l, nil
}

// Setting is the limit as the value of max_execution_time (seconds), or
// "" when there is none.
func (l ExecutionLimit) Setting() string {
	if l.Timeout <= 0 {
		return ""
	}
	return strconv.FormatFloat(max(l.Timeout.Seconds(), 0.001), 'f', 3, 64)
}

// TimeoutExceeded is the code of ClickHouse's TIMEOUT_EXCEEDED error: a
// query ran into its max_execution_time.
const TimeoutExceeded = 159

// Cause is the context error behind a query that ran under l and ctx
// and failed, or nil. It is ctx.Err(); or context.DeadlineExceeded once
// ctx's deadline has passed although its timer has not fired yet; or
// context.DeadlineExceeded when the engine stopped the query at l
// (timedOut: it reported [TimeoutExceeded]) and l came from ctx's
// deadline. The engine measures time with clocks of its own and can call
// the limit reached a little before the deadline does in Go, so the
// cause is decided by which limit was set, not by comparing clocks.
func (l ExecutionLimit) Cause(ctx context.Context, timedOut bool) error {
	if err := ContextErr(ctx); err != nil {
		return err
	}
	if timedOut && l.FromDeadline {
		return context.DeadlineExceeded
	}
	return nil
}

// ContextErr is ctx.Err(), or context.DeadlineExceeded once ctx's deadline
// has passed although its timer has not fired yet.
func ContextErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// RawInserter is a Backend that can insert events as the JSON the spool
// holds (json.Marshal of an Event), without decoding them first. The
// shipper uses it when the backend has it.
type RawInserter interface {
	InsertJSON(ctx context.Context, table string, rows [][]byte, token string) error
}

// EngineCPUReporter is a Backend that runs in the gateway's process (the
// embedded engine) and can say how much CPU time it has used, which the
// process's own CPU time includes.
type EngineCPUReporter interface {
	EngineCPU() time.Duration
}

// Backend is a ClickHouse the audit trail is stored in: a server or
// cluster, or the embedded engine. Both run the same DDL and queries.
type Backend interface {
	// Exec runs one statement (DDL, or a statement without result).
	Exec(ctx context.Context, stmt string) error
	// Insert appends events to table in one batch. token is a
	// deduplication token: inserting the same batch (same token) again is
	// a no-op, which makes replays after a crash exactly-once.
	Insert(ctx context.Context, table string, events []Event, token string) error
	// Query runs one SELECT.
	Query(ctx context.Context, query string, opts QueryOptions) (*Result, error)
	// Name says which backend this is, for logs: "chdb:/path" or
	// "clickhouse:host:port".
	Name() string
	Close() error
}
