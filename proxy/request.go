package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
	"github.com/gatehouse-dev/gatehouse/internal/guard"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// requestCtx follows one agent request for logs and metrics.
type requestCtx struct {
	start     time.Time
	vs        string
	method    string
	id        string
	session   string
	principal *identity.Principal
	upstream  string
	target    string
	// decision, grants and findings are what access control decided and
	// found (findings never hold the matched text).
	decision string
	grants   []string
	findings []guard.Finding
	// secrets and leases name the secret bindings the request carried and
	// their lease IDs (never values).
	secrets []string
	leases  []string
	// For the audit event: the (redacted) arguments and the hash of the
	// unredacted ones, the approval rule and ID, the policy revision, and
	// where the time went.
	args       json.RawMessage
	argsHash   string
	rule       string
	approvalID string
	revision   int64
	// responseBytes is the encoded result's size when something encoded
	// it already (response guardrails); 0 otherwise.
	responseBytes int
	authDur       time.Duration
	policyDur     time.Duration
	guardDur      time.Duration
	approvalDur   time.Duration
	upstreamDur   time.Duration
}

type requestKey struct{}

func withRequest(ctx context.Context, rc *requestCtx) context.Context {
	return context.WithValue(ctx, requestKey{}, rc)
}

func requestFrom(ctx context.Context) *requestCtx {
	rc, _ := ctx.Value(requestKey{}).(*requestCtx)
	return rc
}

func (g *Gateway) beginRequest(ctx context.Context, vs, method string, req mcp.Request) *requestCtx {
	rc := &requestCtx{start: time.Now(), vs: vs, method: method, principal: principalOf(req)}
	if s := req.GetSession(); s != nil {
		rc.session = s.ID()
	}
	rc.id = g.nextRequestID()
	if ex := req.GetExtra(); ex != nil && ex.TokenInfo != nil {
		rc.authDur, _ = ex.TokenInfo.Extra[authDurExtra].(time.Duration)
	}
	switch p := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		if p != nil {
			rc.target = recordedName(p.Name)
		}
	case *mcp.GetPromptParams:
		if p != nil {
			rc.target = recordedName(p.Name)
		}
	case *mcp.ReadResourceParams:
		if p != nil {
			rc.target = recordedName(p.URI)
		}
	}
	return rc
}

// recordedName is a name an agent sent as logs and the audit trail keep
// it: clipped, and with any credential in it masked, since an agent that
// sends a token as a tool's name must not have it stored.
func recordedName(name string) string { return maskSecrets(clipName(name)) }

// maskSecrets replaces the credentials the secrets detector finds in s
// (an error repeating what an agent sent, say) with typed placeholders.
func maskSecrets(s string) string {
	if ms := guard.DetectSecrets(s); len(ms) > 0 {
		return guard.Redact(s, ms)
	}
	return s
}

// maxNameBytes bounds the tool, prompt or resource name an agent sent as
// logs, the audit trail and error messages repeat it: real names are
// short, and an agent's 900 KB name was written out in full, twice per
// log line.
const maxNameBytes = 256

// clipName returns name, or its first maxNameBytes bytes (whole runes)
// and its size when it is longer.
func clipName(name string) string {
	if len(name) <= maxNameBytes {
		return name
	}
	return fmt.Sprintf("%s (%d bytes)", clip.String(name, maxNameBytes), len(name))
}

// nextRequestID returns a gateway-unique request id for logs and audit:
// process start (base 36) and a sequence number.
func (g *Gateway) nextRequestID() string {
	return g.idPrefix + strconv.FormatUint(g.reqSeq.Add(1), 36)
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		switch we.Code {
		case CodeDenied:
			return "denied"
		case CodeApprovalRequired:
			return "approval_required"
		case CodeApprovalUnavailable:
			return "approval_unavailable"
		case CodeRateLimited:
			return "rate_limited"
		case CodeGuardrailBlocked:
			return "blocked"
		case CodeUpstreamUnavailable:
			return "unavailable"
		case CodeUpstreamTimeout:
			return "timeout"
		case CodeSecretUnavailable:
			return "secret_unavailable"
		case CodeAuditUnavailable:
			return "audit_unavailable"
		}
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return "error"
}

// warns reports whether a request with outcome out (and error err) failed
// through the gateway or a backend (an upstream down or too slow; a
// secret, the approval service or the audit trail unavailable; an
// internal error): a warning for operators. Denials, guardrail blocks,
// rate limits, held calls, cancels and an agent's malformed requests or
// unknown names are the agent's doing, and tool errors the tool's: not
// warnings, so that an agent probing its limits cannot fill a log kept at
// warn level.
func warns(out string, err error) bool {
	switch out {
	case "unavailable", "timeout", "secret_unavailable", "approval_unavailable", "audit_unavailable":
		return true
	case "error":
		var we *jsonrpc.Error
		if errors.As(err, &we) {
			switch we.Code {
			case jsonrpc.CodeParseError, jsonrpc.CodeInvalidRequest, jsonrpc.CodeMethodNotFound, jsonrpc.CodeInvalidParams:
				return false
			}
		}
		return true
	}
	return false
}

// endRequest records metrics, the log line and the audit event of a
// finished request. It returns what to answer: the request's own result,
// or an error when its audit event could not be stored.
func (g *Gateway) endRequest(rc *requestCtx, res mcp.Result, err error) (mcp.Result, error) {
	out := outcome(err)
	if out == "ok" {
		if r, ok := res.(*mcp.CallToolResult); ok && r != nil && r.IsError {
			out = "tool_error"
		}
	}
	if g.audit != nil && audited(rc.method) {
		if aerr := g.recordAudit(rc, res, err, out); aerr != nil {
			res, err, out = nil, aerr, "audit_unavailable"
		}
	}
	g.logRequest(rc, out, err)
	return res, err
}

func (g *Gateway) logRequest(rc *requestCtx, out string, err error) {
	d := time.Since(rc.start)
	m := methodLabel(rc.method)
	g.metrics.requests.WithLabelValues(rc.vs, m, out).Inc()
	g.metrics.latency.WithLabelValues(rc.vs, m).Observe(d.Seconds())
	// A request the gateway or a backend failed is a warning, logged at
	// --log-level warn too; what the agent brought on itself is not.
	level := slog.LevelInfo
	if warns(out, err) {
		level = slog.LevelWarn
	}
	if !g.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", rc.id), slog.String("vs", rc.vs), slog.String("method", rc.method), slog.String("outcome", out),
		slog.String("agent", rc.principal.Agent), slog.String("session", rc.session),
		slog.Float64("latency_ms", float64(d.Microseconds())/1000),
	}
	if rc.upstream != "" {
		attrs = append(attrs, slog.String("upstream", rc.upstream))
	}
	if rc.target != "" {
		attrs = append(attrs, slog.String("target", rc.target))
	}
	if rc.decision != "" {
		attrs = append(attrs, slog.String("decision", rc.decision))
		if len(rc.grants) > 0 {
			attrs = append(attrs, slog.Any("grants", rc.grants))
		}
	}
	if len(rc.findings) > 0 {
		attrs = append(attrs, slog.Any("findings", findingsLog(rc.findings)))
	}
	if len(rc.secrets) > 0 {
		attrs = append(attrs, slog.Any("secret_bindings", rc.secrets))
		if len(rc.leases) > 0 {
			attrs = append(attrs, slog.Any("lease_ids", rc.leases))
		}
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", maskSecrets(err.Error())))
	}
	g.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// findingsLog is how findings appear in logs: rule, detector, kind, path and
// action; the matched text never does.
func findingsLog(fs []guard.Finding) []map[string]any {
	out := make([]map[string]any, len(fs))
	for i, f := range fs {
		out[i] = map[string]any{"rule": f.Rule, "detector": f.Detector, "kind": f.Kind, "path": f.Path, "action": f.Action}
		if f.Score > 0 && f.Score < 1 {
			out[i]["score"] = f.Score
		}
	}
	return out
}
