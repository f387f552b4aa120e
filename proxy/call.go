package proxy

import (
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

// Call is one agent request that reaches an upstream feature, after access
// control (access.go) let it through.
type Call struct {
	Principal *identity.Principal
	VS        string
	Method    string // e.g. "tools/call"
	Kind      string // KindTool, ...
	Target    string // exposed name or URI
	// Upstream and UpstreamName say where the call goes.
	Upstream     string
	UpstreamName string
	// Arguments are the raw tool-call arguments (redacted when a guardrail
	// redacted them), nil for other kinds.
	Arguments json.RawMessage
}
