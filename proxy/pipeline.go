package proxy

import (
	"context"
	"encoding/json"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Kinds of feature a [Call] targets.
const (
	KindTool       = "tool"
	KindPrompt     = "prompt"
	KindResource   = "resource"
	KindCompletion = "completion"
)

// Call is one agent request that reaches an upstream feature, as the
// decision pipeline sees it.
type Call struct {
	Principal *identity.Principal
	VS        string
	Method    string // e.g. "tools/call"
	Kind      string // KindTool, ...
	Target    string // exposed name or URI
	// Upstream and UpstreamName say where the call goes.
	Upstream     string
	UpstreamName string
	// Arguments are the raw tool-call arguments, nil for other kinds.
	Arguments json.RawMessage
}

// Effect is what a decision says to do with a call.
type Effect int

// Effects, from the most to the least permissive.
const (
	Allow Effect = iota
	RequireApproval
	Deny
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "allow"
	case RequireApproval:
		return "require_approval"
	}
	return "deny"
}

// Decision is a stage's verdict on a call.
type Decision struct {
	Effect Effect
	// Reason is safe to show the agent.
	Reason string
	// Stage names the stage that decided.
	Stage string
}

// A Stage examines a call and may decide it. Returning ok=false passes the
// call to the next stage. Later capabilities (RBAC with CEL, guardrails,
// approvals) are stages.
type Stage interface {
	Name() string
	Decide(ctx context.Context, c *Call) (d Decision, ok bool)
}

// Pipeline runs stages in order; the first that decides wins. A call no
// stage decides is allowed only if the pipeline's Default says so.
type Pipeline struct {
	Stages  []Stage
	Default Decision
}

// DefaultPipeline routes every exposed call. Routing itself (the virtual
// server must expose the name) happens before the pipeline runs.
func DefaultPipeline() *Pipeline {
	return &Pipeline{Default: Decision{Effect: Allow, Stage: "route"}}
}

// Decide runs the stages.
func (p *Pipeline) Decide(ctx context.Context, c *Call) Decision {
	for _, s := range p.Stages {
		if d, ok := s.Decide(ctx, c); ok {
			if d.Stage == "" {
				d.Stage = s.Name()
			}
			return d
		}
	}
	return p.Default
}
