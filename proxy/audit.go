package proxy

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// CodeAuditUnavailable: the request was refused (or, once sent upstream,
// its result withheld) because its audit event could not be stored
// durably: the audit spool is at its disk budget and the policy is to
// refuse (compliance first), or its disk failed.
const CodeAuditUnavailable = -32058

// AuditSink stores audit events durably; internal/audit's Writer is one.
type AuditSink interface {
	// Admit returns nil when new requests may proceed, or why they may
	// not (the audit spool is full and the policy refuses).
	Admit() error
	// Record stores e durably (it sets e's chain fields); the request is
	// acknowledged only after it returns nil.
	Record(e *audit.Event) error
	// Status is "ok" or what is wrong, for /readyz.
	Status() string
}

// auditError answers a request whose audit event could not be stored.
// sent: the request had gone to the upstream already (its event is
// written when it finishes), so the upstream may have acted and only the
// result is withheld; a retry could act twice.
func auditError(err error, sent bool) error {
	if sent {
		return &jsonrpc.Error{Code: CodeAuditUnavailable,
			Message: "audit trail unavailable, result withheld: the request had been sent, so the upstream may have acted on it, but its audit event could not be stored: " + err.Error(),
			Data:    json.RawMessage(`{"outcome":"unknown"}`)}
	}
	return &jsonrpc.Error{Code: CodeAuditUnavailable, Message: "audit trail unavailable, request refused: " + err.Error()}
}

// audited reports whether requests of method get an audit event: every
// request, not notifications.
func audited(method string) bool { return !strings.HasPrefix(method, "notifications/") }

// recordAudit stores the audit event of a finished request. A request
// whose event cannot be stored is not acknowledged: its result is replaced
// by an error.
func (g *Gateway) recordAudit(rc *requestCtx, res mcp.Result, err error, out string) error {
	e := &audit.Event{
		Time: rc.start, Kind: audit.KindRequest, RequestID: rc.id, SessionID: rc.session,
		VirtualServer: rc.vs, Upstream: rc.upstream, Method: rc.method, Target: rc.target,
		Arguments: string(rc.args), ArgsHash: rc.argsHash,
		Decision: rc.decision, Grants: rc.grants, Rule: rc.rule, PolicyRevision: rc.revision,
		ApprovalID: rc.approvalID, SecretBindings: rc.secrets, LeaseIDs: rc.leases,
		Outcome: out,
		AuthUs:  micros32(rc.authDur), PolicyUs: micros32(rc.policyDur), GuardUs: micros32(rc.guardDur),
		ApprovalUs: uint64(rc.approvalDur.Microseconds()), UpstreamUs: uint64(rc.upstreamDur.Microseconds()),
		TotalUs:      uint64(time.Since(rc.start).Microseconds()),
		RequestBytes: uint64(len(rc.args)),
	}
	if p := rc.principal; p != nil {
		e.Agent, e.Team, e.Roles, e.AuthMethod = p.Agent, p.Team, p.Roles, p.Method
	}
	for _, f := range rc.findings {
		e.Findings = append(e.Findings, audit.Finding{Rule: f.Rule, Detector: f.Detector, Kind: f.Kind, Path: f.Path,
			Action: f.Action, Start: uint32(f.Start), End: uint32(f.End)})
	}
	if err != nil {
		e.Error = maskSecrets(err.Error())
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			e.ErrorCode = int32(je.Code)
		}
	} else if rc.responseBytes > 0 {
		e.ResponseBytes = uint64(rc.responseBytes)
	} else if b := decodedJSON(res); b != nil {
		e.ResponseBytes = uint64(len(b))
	} else if res != nil {
		if b, merr := json.Marshal(res); merr == nil {
			e.ResponseBytes = uint64(len(b))
		}
	}
	if aerr := g.audit.Record(e); aerr != nil {
		if out != "audit_unavailable" {
			// A request Admit refused already has its error, and its
			// access log line says why; the spool logs the condition
			// itself, rate-limited. Logging each such request again
			// would flood the log while the audit is unavailable.
			g.log.Error("audit event not stored; the request is not acknowledged", "request_id", rc.id, "error", aerr)
		}
		// A held call's execution is the approval workflow's, audited
		// there, and its identical retry gets the stored result without
		// running again: only the agent's own send counts here.
		return auditError(aerr, rc.upstreamDur > 0)
	}
	return nil
}

func micros32(d time.Duration) uint32 {
	us := d.Microseconds()
	if us > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(us)
}
