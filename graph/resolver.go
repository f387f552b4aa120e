// Package graph is Gatehouse's GraphQL admin API over the config store:
// Relay connections with where-filters and ordering for every entity,
// node(id), create/update/delete mutations with field-level validation
// errors (CEL checked through [CheckExpression]), rotateAgentKey,
// createAdminToken, validateConfig, the admin change log (adminChanges),
// declarative exportConfig/applyConfig, settings, tool-definition pinning
// (Tool.pinStatus and definitionDiff, approveToolDefinition),
// discoverTools, effectiveTools and explainDecision over the running
// gateway ([Gateway]), and the audit trail (auditEvents, auditStats,
// auditVerify over [AuditAPI]).
// [NewHandler] serves it over HTTP behind admin-token authentication, with
// a role check on every root field; [NewAuditHandler] serves auditors' SQL
// and exports of the audit trail behind the same authentication.
//
// The schema is graph/ent.graphql (generated from ent/schema by entgql) plus
// the hand-written graph/gatehouse.graphql and graph/audit.graphql; gqlgen
// generates graph/generated and graph/model/models_gen.go from them
// (`go generate ./...`).
package graph

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// UpstreamTool is a tool as an upstream serves it now.
type UpstreamTool struct {
	Name, Title, Description               string
	InputSchema, OutputSchema, Annotations json.RawMessage // nil when absent
}

// ExposedTool is a tool as a virtual server exposes it to agents.
type ExposedTool struct {
	Name         string // as agents see it (after rename)
	Upstream     string // upstream name
	UpstreamTool string // name on the upstream
	Description  string // after description override
}

// Explanation is how the running gateway would decide a call
// ([Gateway.Explain]); explainDecision returns it.
type Explanation struct {
	// Effect is the decision: allow, deny or require_approval.
	Effect string
	// Reason says why, in a sentence an admin reads.
	Reason string
	// Grants lists every grant that matched the call.
	Grants []ExplainedGrant
	// Guardrails lists what the guardrails found in the arguments.
	Guardrails []ExplainedFinding
	// RateLimit names the rate limit that would refuse the call now; "" when
	// none would.
	RateLimit string
	// Visible reports whether the agent sees the tool in tools/list.
	Visible bool
}

// ExplainedGrant is a grant that matched an explained call.
type ExplainedGrant struct {
	Grant  string // the grant's name
	Effect string // allow, deny or require_approval
	Reason string // why it matched, or why its condition did not hold
}

// ExplainedFinding is what a guardrail found in an explained call's
// arguments: never the matched text.
type ExplainedFinding struct {
	Rule     string // the guardrail rule's name
	Detector string // secrets, pii, injection, regex, denylist or size
	Kind     string // e.g. aws_access_key, email
	Path     string // where in the arguments, e.g. $.query
	Action   string // block, redact, flag or require_approval
}

// Gateway is what the admin API needs from the running data path, for the
// operations that the store alone cannot answer (discoverTools,
// effectiveTools and explainDecision).
type Gateway interface {
	// ListUpstreamTools lists the tools the named upstream serves now, asking it live.
	// An unknown upstream returns an error wrapping ErrUnknownUpstream; a down upstream a descriptive error.
	ListUpstreamTools(ctx context.Context, upstream string) ([]UpstreamTool, error)
	// ExposedTools lists the tools virtual server vs exposes in the running snapshot.
	// An unknown virtual server returns an error wrapping ErrUnknownVirtualServer.
	ExposedTools(ctx context.Context, vs string) ([]ExposedTool, error)
	// Explain decides, without calling anything or counting against rate
	// limits, a call by agent (a stored agent's name) of tool (the name vs
	// exposes) with args (nil for none), against the running snapshot.
	// It returns an error wrapping ErrUnknownVirtualServer, ErrUnknownTool
	// (vs exposes no tool of that name to anyone) or ErrUnknownAgent (the
	// running snapshot does not know the agent yet) for those cases.
	Explain(ctx context.Context, agent, vs, tool string, args map[string]any) (*Explanation, error)
	// CheckConfig reports whether doc (the store's configuration, as
	// store.ExportDocument gives it) would apply on the running gateway
	// with what its upstreams serve now: the errors only their answers
	// show, such as a rename colliding with another upstream's tool.
	CheckConfig(ctx context.Context, doc *config.Document) error
}

// Errors a [Gateway] wraps when it does not run the upstream, virtual
// server, tool or agent asked for.
var (
	ErrUnknownUpstream      = errors.New("unknown upstream")
	ErrUnknownVirtualServer = errors.New("unknown virtual server")
	ErrUnknownTool          = errors.New("unknown tool")
	ErrUnknownAgent         = errors.New("unknown agent")
)

// CheckExpression, when set, compiles a CEL expression an admin writes, so
// that a bad one is refused when it is written rather than when a gateway
// compiles its snapshot: kind is "when" for a grant's condition and
// "claim" for a claim subject (of a grant or rate limit). Its error is
// shown to the admin and should carry the position (line:column). The CLI
// sets it to policy.CheckExpression; nil checks nothing. Set it before
// serving: it is read without synchronization.
var CheckExpression func(kind, expr string) error

// Resolver is the root resolver: it holds what every resolver depends on.
// [NewHandler] builds it; [NewResolver] builds one for other transports.
type Resolver struct {
	// Gateway is the running data path; nil in a store-only API (tests,
	// tools), where operations that need it answer UNAVAILABLE (see
	// [ErrGatewayUnavailable]).
	Gateway Gateway
	// Approvals decides held calls; nil where approval workflows do not
	// run (approveCall and denyCall then answer UNAVAILABLE).
	Approvals Approvals
	// Audit reads the audit trail; nil when it is off (auditEvents,
	// auditStats and auditVerify then answer UNAVAILABLE).
	Audit AuditAPI

	client *ent.Client
}

// NewResolver returns the root resolver over client; gw may be nil.
func NewResolver(client *ent.Client, gw Gateway) *Resolver {
	return &Resolver{client: client, Gateway: gw}
}

// ent returns the client to use in ctx: the transaction a mutation runs in
// ([transactioner] puts it there), else the store's client.
func (r *Resolver) ent(ctx context.Context) *ent.Client {
	if c := ent.FromContext(ctx); c != nil {
		return c
	}
	return r.client
}
