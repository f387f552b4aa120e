package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/guard"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/jsonpool"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// CodeApprovalUnavailable: the call needs approval and the approval
// service (Temporal, the store) cannot take it now. Nothing was sent
// upstream; the agent may retry.
const CodeApprovalUnavailable = -32056

// HeldCall is a tool call that needs a human's approval before it runs.
type HeldCall struct {
	Principal *identity.Principal
	VS        string
	Tool      string // exposed name
	// Upstream and UpstreamTool say where the approved call goes.
	Upstream     string
	UpstreamTool string
	// Arguments are what the approved call sends (after any redaction a
	// guardrail made); Display the same with every secret and piece of
	// personal data redacted, for approvers.
	Arguments json.RawMessage
	Display   json.RawMessage
	// ArgsHash identifies identical calls: hex SHA-256 of the canonical
	// Arguments.
	ArgsHash string
	// Reasons say why the call was held: grants, guardrail findings, rules.
	Reasons []string
	// Rule is the approval rule that governs the call.
	Rule config.ApprovalRule
	// ApprovalID is set by Hold to the approval the call waited for (for
	// the audit trail).
	ApprovalID string
}

// Progress reports, while a call waits, how far its approval is; the
// gateway relays it to the agent as a progress notification.
type Progress func(message string)

// Approvals holds calls for approval: the approval service
// (internal/approval) implements it over Temporal.
type Approvals interface {
	// Hold waits, up to the hold time, for the approval of c and for the
	// approved call to run, calling progress as the approval advances and
	// periodically to keep the agent's request alive. It returns the result
	// to give the agent: the upstream's on approval, a tool error naming
	// the approval otherwise (denied, timed out, still pending when the hold
	// time ended). proceed means an earlier approval of the identical call
	// still covers it (the rule's reuse window): the gateway forwards it as
	// an allowed call. An error is a JSON-RPC error for the agent.
	Hold(ctx context.Context, c *HeldCall, progress Progress) (res *mcp.CallToolResult, proceed bool, err error)
	// Ready reports whether calls can be held now (Temporal answers); /readyz
	// shows it.
	Ready(ctx context.Context) error
}

// SetApprovals enables approval workflows: calls that need approval are
// handed to a (Hold). Without it they are refused with
// [CodeApprovalRequired]. Call it before serving agents.
func (g *Gateway) SetApprovals(a Approvals) { g.approvals = a }

// approvalNeed records that a call needs approval, and why.
type approvalNeed struct {
	rule    string // the approval rule named by the grant or rule; "" for the default
	reasons []string
}

// holdCall hands an approved-to-be call to the approval service.
func (f *face) holdCall(ctx context.Context, req *mcp.CallToolRequest, r *Route, name string, cc *callCheck, raw json.RawMessage) (*mcp.CallToolResult, bool, error) {
	snap := f.g.snap.Load()
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	c := &HeldCall{
		Principal: principalOf(req), VS: f.name, Tool: name,
		Upstream: r.Upstream, UpstreamTool: r.Name,
		Arguments: raw, Display: displayArgs(raw),
		ArgsHash: ArgsHash(cc.args),
		Reasons:  cc.approval.reasons,
		Rule:     snap.access.policy.ApprovalRule(cc.approval.rule),
	}
	token := req.Params.GetProgressToken()
	var seq float64
	progress := func(msg string) {
		if token == nil {
			return
		}
		seq++ // progress must increase with every notification
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Message: msg, Progress: seq})
		if err != nil {
			f.g.log.Debug("approval progress not delivered", "vs", f.name, "tool", name, "error", err)
		}
	}
	start := time.Now()
	res, proceed, err := f.g.approvals.Hold(ctx, c, progress)
	if rc := requestFrom(ctx); rc != nil {
		rc.approvalID, rc.rule = c.ApprovalID, c.Rule.Name
		rc.approvalDur = time.Since(start)
	}
	if err != nil {
		return nil, false, err
	}
	if proceed {
		return nil, true, nil
	}
	return res, false, nil
}

// ArgsHash is the hash that identifies identical calls: hex SHA-256 of the
// arguments' canonical JSON (object keys sorted, as encoding/json writes
// maps). Nil arguments hash like an empty object.
func ArgsHash(args map[string]any) string {
	if args == nil {
		args = map[string]any{}
	}
	// The encoding is only hashed, so it stays in a pooled buffer.
	var sum [sha256.Size]byte
	_ = jsonpool.Use(args, func(b []byte) { sum = sha256.Sum256(b) }) // decoded JSON: cannot fail
	return hex.EncodeToString(sum[:])
}

var (
	displayOnce  sync.Once
	displayGuard *guard.Set
)

// displayArgs returns the arguments raw with every secret and piece of
// personal data the built-in detectors find redacted: what approvers see.
// It decodes its own copy: redaction rewrites the tree in place.
func displayArgs(raw json.RawMessage) json.RawMessage {
	var args map[string]any
	if err := json.Unmarshal(raw, &args); err != nil {
		return json.RawMessage("{}")
	}
	displayOnce.Do(func() {
		displayGuard, _ = guard.Compile([]config.Guardrail{
			{Name: "approval-display-secrets", Direction: config.DirectionRequest, Detector: "secrets", Action: config.ActionRedact},
			{Name: "approval-display-pii", Direction: config.DirectionRequest, Detector: "pii", Action: config.ActionRedact},
		})
	})
	var root any = args
	if args == nil {
		root = map[string]any{}
	}
	if displayGuard != nil {
		root, _ = displayGuard.Check(config.DirectionRequest, "", "", "args", root)
	}
	return mustJSON(root)
}

// ExecuteApproved runs an approved call on the upstream, on the gateway's
// own session with it (not an agent's). It is the approval workflow's
// upstream call: it does not decide again, and calls the upstream exactly
// once (no retry after a transport failure, since the upstream may have
// acted). Response guardrails are [Gateway.CheckResult]'s job.
func (g *Gateway) ExecuteApproved(ctx context.Context, c *HeldCall) (*mcp.CallToolResult, error) {
	call := &Call{Principal: c.Principal, VS: c.VS, Method: "tools/call", Kind: KindTool, Target: c.Tool,
		Upstream: c.Upstream, UpstreamName: c.UpstreamTool, Arguments: c.Arguments}
	as := g.agentFor(nil, c.VS, c.Principal)
	res, err := dispatch(g, ctx, as, call, func(ctx context.Context, conn *upstreamConn, _ *flight) (*mcp.CallToolResult, error) {
		p := &mcp.CallToolParams{Name: c.UpstreamTool}
		args, err := secrets.InjectionFrom(ctx).InjectArgs(c.Arguments)
		if err != nil {
			return nil, err
		}
		if len(args) > 0 {
			p.Arguments = args
		}
		return conn.cs.CallTool(ctx, p)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// CheckResult applies the response guardrails the current snapshot has
// for tool in vs to res: it returns res, a redacted copy, or an error with
// [CodeGuardrailBlocked].
func (g *Gateway) CheckResult(ctx context.Context, vs, tool string, res *mcp.CallToolResult) (*mcp.CallToolResult, error) {
	return checkResult(ctx, g, vs, tool, res)
}

// approvalError is the JSON-RPC error for a call that needs approval when
// approvals cannot be used.
func approvalError(format string, args ...any) error {
	return &jsonrpc.Error{Code: CodeApprovalRequired, Message: fmt.Sprintf(format, args...)}
}
