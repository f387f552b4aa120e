package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	segjson "github.com/segmentio/encoding/json"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/guard"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
)

// More JSON-RPC error codes of the gateway's own (see CodeDenied).
const (
	// CodeApprovalRequired: the call needs a human's approval.
	CodeApprovalRequired = -32053
	// CodeRateLimited: a rate limit is exhausted; data carries
	// retryAfterSeconds.
	CodeRateLimited = -32054
	// CodeGuardrailBlocked: a guardrail blocked the arguments or the
	// result; data names the rule and what it found (never the text).
	CodeGuardrailBlocked = -32055
)

// access is the compiled access control of one snapshot: grants, guardrails,
// argument validators and pins.
type access struct {
	policy *policy.Policy
	guards *guard.Set
	// args validates arguments by upstream tool, from its inputSchema;
	// nil entries for tools whose schema does not compile (logged).
	args map[toolKey]*guard.ArgValidator
	// hashes are the definition hashes of the tools upstreams serve now.
	hashes map[toolKey]string
	// defs are the definitions upstreams serve now.
	defs map[toolKey]tooldef.Definition
	// Quarantined lists tools withheld by pinning, for /readyz and logs.
	quarantined []Quarantined
	// shadowing lists tools whose names imitate others'.
	shadowing []string
}

type toolKey struct{ upstream, tool string }

// Quarantined is a tool that pinning withholds from every virtual server.
type Quarantined struct {
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	// Reason is "definition changed" (a pinned tool changed: approve the
	// new definition to restore it) or "awaiting approval" (pinning mode
	// approve, or a definition that looked poisoned when first seen).
	Reason string `json:"reason"`
}

// compileAccess compiles the grants and guardrails of doc and computes the
// definition hash of every tool the catalogs hold. Arguments are validated
// against a tool's schema in which those hidden holds (secrets injected
// into them) are optional: the agent is not asked for them.
func compileAccess(doc *config.Document, catalogs map[string]*Catalog, hidden hiddenArgs) (*access, error) {
	pol, err := policy.Compile(doc.Grants, doc.ApprovalRules...)
	if err != nil {
		return nil, err
	}
	guards, err := guard.Compile(doc.Guardrails)
	if err != nil {
		return nil, err
	}
	a := &access{policy: pol, guards: guards, args: map[toolKey]*guard.ArgValidator{}, hashes: map[toolKey]string{}, defs: map[toolKey]tooldef.Definition{}}
	for name, cat := range catalogs {
		if cat == nil {
			continue
		}
		for _, t := range cat.Tools {
			k := toolKey{name, t.Name}
			d := tooldef.FromMCP(t)
			a.defs[k] = d
			if h, err := d.Hash(); err == nil {
				a.hashes[k] = h
			}
			if raw, err := json.Marshal(optionalArgs(t.InputSchema, hidden.of(name, t.Name))); err == nil && t.InputSchema != nil {
				if v, err := guard.CompileArgs(raw); err == nil {
					a.args[k] = v
				}
			}
		}
	}
	return a, nil
}

// pinIndex says, per upstream tool, whether pinning lets it through.
type pinIndex struct {
	mode   string
	pins   map[toolKey]string // approved hash; "" known, never approved
	hashes map[toolKey]string
	// suspect marks tools never seen before whose definition looks
	// poisoned: even auto mode holds them for approval.
	suspect map[toolKey]bool
}

func newPinIndex(doc *config.Document, a *access) *pinIndex {
	p := &pinIndex{mode: doc.Pinning.Mode, pins: make(map[toolKey]string, len(doc.Pins)), hashes: a.hashes, suspect: map[toolKey]bool{}}
	for _, pin := range doc.Pins {
		p.pins[toolKey{pin.Upstream, pin.Tool}] = pin.Hash
	}
	if p.mode == config.PinningAuto {
		for k, d := range a.defs {
			if _, known := p.pins[k]; !known && len(guard.ScanToolDefinition(d.Name, d.Title, d.Description, d.InputSchema)) > 0 {
				p.suspect[k] = true
			}
		}
	}
	return p
}

// withheld returns why pinning withholds tool of upstream, or "".
func (p *pinIndex) withheld(upstream, tool string) string {
	if p == nil || p.mode == config.PinningOff || p.mode == "" {
		return ""
	}
	k := toolKey{upstream, tool}
	approved, known := p.pins[k]
	switch {
	case !known || approved == "":
		// In auto mode a tool seen for the first time is served; the
		// gateway records and pins it right away.
		if p.mode == config.PinningAuto && !known && !p.suspect[k] {
			return ""
		}
		return "awaiting approval"
	case approved != p.hashes[k]:
		return "definition changed"
	}
	return ""
}

// newPolicyRequest describes, for the policy engine, principal p using
// name (of kind) in virtual server vs, served by route r (nil if none).
func newPolicyRequest(p *identity.Principal, vs string, kind policy.Kind, name string, r *Route) *policy.Request {
	pr := &policy.Request{Principal: p, VirtualServer: vs, Kind: kind, Name: name, Time: time.Now()}
	if r != nil {
		pr.Upstream, pr.Annotations = r.Upstream, r.Annotations
		if kind != policy.KindResource && r.Name != name {
			pr.UpstreamName = r.Name // renamed: restricting controls match either name
		}
	}
	return pr
}

// policyRequest describes an agent's request, with its source address.
func policyRequest(req mcp.Request, vs string, kind policy.Kind, name string, r *Route) *policy.Request {
	pr := newPolicyRequest(principalOf(req), vs, kind, name, r)
	pr.SourceIP = sourceIP(req)
	return pr
}

// sourceIP returns the agent's address as the HTTP layer saw it.
func sourceIP(req mcp.Request) string {
	if ex := req.GetExtra(); ex != nil && ex.TokenInfo != nil {
		if s, ok := ex.TokenInfo.Extra[remoteKey].(string); ok {
			return s
		}
	}
	return ""
}

// callCheck is what the checks before a call decided.
type callCheck struct {
	args     map[string]any // possibly redacted
	redacted bool
	// recorded is what the audit trail keeps of args when flag rules
	// found secrets or personal data in them (masked there, sent as they
	// are); nil: args.
	recorded any
	findings []guard.Finding
	approval *approvalNeed // non-nil: the call needs a human's approval
}

// checkCall runs everything that decides a call before it is forwarded:
// grants, rate limits, argument validation and request guardrails. An
// error is the JSON-RPC error to answer with; nothing was sent upstream.
func (f *face) checkCall(ctx context.Context, req mcp.Request, vs *VirtualServer, kind policy.Kind, name string, r *Route, args map[string]any) (*callCheck, error) {
	snap := f.g.snap.Load()
	rc := requestFrom(ctx)
	pr := policyRequest(req, vs.Name, kind, name, r)
	pr.Args = args
	start := time.Now()
	d := snap.access.policy.Decide(pr)
	if rc != nil {
		rc.policyDur = time.Since(start)
		rc.decision = d.Effect
		rc.grants = matchedGrants(d)
		rc.revision = snap.Revision
		if d.Approval != "" {
			rc.rule = d.Approval
		}
	}
	cc := &callCheck{args: args}
	switch d.Effect {
	case config.EffectAllow:
	case config.EffectRequireApproval:
		if kind != policy.KindTool || f.g.approvals == nil {
			return nil, approvalError("%s %q requires a human's approval, and approval workflows are not enabled on this gateway", kind, name)
		}
		cc.approval = &approvalNeed{rule: d.Approval, reasons: []string{d.Reason}}
	default:
		f.g.log.Info("access denied", "vs", vs.Name, "agent", pr.Principal.Agent, "kind", string(kind), "name", name, "reason", d.Reason)
		return nil, &jsonrpc.Error{Code: CodeDenied, Message: fmt.Sprintf("access denied: %s %q is not permitted for %s", kind, name, pr.Principal.Agent)}
	}
	if kind == policy.KindTool {
		if ok, rule, wait := f.g.limiter.Allow(pr.Principal, vs.Name, name, pr.Time); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			return nil, &jsonrpc.Error{Code: CodeRateLimited,
				Message: fmt.Sprintf("rate limit %q exceeded; retry after %ds", rule, secs),
				Data:    mustJSON(map[string]any{"retryAfterSeconds": secs, "rateLimit": rule})}
		}
	}
	if kind == policy.KindTool {
		if v := snap.access.args[toolKey{r.Upstream, r.Name}]; v != nil {
			if err := v.Validate(args); err != nil {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("invalid arguments for tool %q: %v", name, err)}
			}
		}
	}
	if snap.access.guards.Empty() {
		return cc, nil
	}
	// Request guardrails see what goes to the upstream: a tool's or a
	// prompt's arguments, a resource's URI. Guardrails scoped to tools by
	// name apply to tools only.
	var root any = args
	if args == nil {
		root = map[string]any{}
	}
	guardName, rootName, what := name, "args", "arguments"
	switch kind {
	case policy.KindPrompt:
		guardName = ""
	case policy.KindResource:
		guardName, rootName, what, root = "", "uri", "URI", name
	}
	start = time.Now()
	out, res := snap.access.guards.Check(config.DirectionRequest, vs.Name, guardName, rootName, root)
	cc.findings = res.Findings
	if kind == policy.KindTool && res.Masks() {
		cc.recorded = res.Recorded(rootName, out)
	}
	display := name
	if kind == policy.KindResource && len(res.Findings) > 0 {
		// The URI itself carries what was found: logs, the audit trail
		// and the answer get it redacted.
		display = redactSpans(name, res.Findings)
		if rc != nil {
			rc.target = display
		}
	}
	if rc != nil {
		rc.guardDur += time.Since(start)
		rc.findings = append(rc.findings, res.Findings...)
	}
	switch res.Verdict {
	case config.ActionBlock:
		return nil, blocked(what, display, res)
	case config.ActionRequireApproval:
		if kind != policy.KindTool {
			return nil, approvalError("the %s of %s %q need a human's approval (%s), which only tool calls can wait for", what, kind, display, findingSummary(res.Findings))
		}
		if f.g.approvals == nil {
			return nil, approvalError("the arguments of tool %q need a human's approval (%s), and approval workflows are not enabled on this gateway", name, findingSummary(res.Findings))
		}
		why := "guardrail findings: " + findingSummary(res.Findings)
		if cc.approval == nil {
			cc.approval = &approvalNeed{}
		}
		cc.approval.reasons = append(cc.approval.reasons, why)
	case config.ActionRedact:
		if kind == policy.KindResource {
			// A redacted URI names another resource: reading it would
			// answer for something the agent did not ask for.
			return nil, blocked(what, display, res)
		}
		m, _ := out.(map[string]any)
		cc.args, cc.redacted = m, true
	}
	return cc, nil
}

// redactSpans replaces the spans of s that findings at the root mark
// with [REDACTED].
func redactSpans(s string, fs []guard.Finding) string {
	var b strings.Builder
	last := 0
	for _, f := range slices.SortedFunc(slices.Values(fs), func(a, b guard.Finding) int { return a.Start - b.Start }) {
		if f.Start < last || f.End > len(s) || f.End <= f.Start {
			continue
		}
		b.WriteString(s[last:f.Start])
		b.WriteString("[REDACTED]")
		last = f.End
	}
	b.WriteString(s[last:])
	return b.String()
}

// checkResult runs response guardrails over a result (decoded into generic
// JSON and back, so every text an agent would read is inspected). It
// returns the result to send, possibly redacted.
func checkResult[R any](ctx context.Context, g *Gateway, vs, tool string, res *R) (*R, error) {
	snap := g.snap.Load()
	if res == nil || snap.access.guards.Empty() {
		return res, nil
	}
	rc := requestFrom(ctx)
	if rc != nil {
		defer func(start time.Time) { rc.guardDur += time.Since(start) }(time.Now())
	}
	// A tool result decoded from an upstream's answer has the bytes it
	// was decoded from: what the upstream sent, so the guardrails see
	// exactly that, and nothing writes to them. Other results marshal
	// themselves (compact, valid JSON): calling that directly spares
	// encoding/json's second pass over the output.
	b := decodedJSON(res)
	if b == nil {
		var err error
		if m, ok := any(res).(json.Marshaler); ok {
			b, err = m.MarshalJSON()
		} else {
			b, err = json.Marshal(res)
		}
		if err != nil {
			return res, nil
		}
	}
	if rc != nil {
		rc.responseBytes = len(b) // the audit event's, without encoding it again
	}
	// Decoded into the generic form the guardrails walk (the same values
	// encoding/json gives: maps, slices, float64, string, bool) by the
	// faster decoder the go-sdk itself uses. Strings may share b's memory
	// (b is never written to), sparing a copy of every text.
	var v any
	if _, err := segjson.Parse(b, &v, segjson.DontCopyString); err != nil {
		return res, nil
	}
	out, gr := snap.access.guards.Check(config.DirectionResponse, vs, tool, "result", v)
	if rc != nil {
		rc.findings = append(rc.findings, gr.Findings...)
	}
	switch gr.Verdict {
	case config.ActionBlock, config.ActionRequireApproval:
		name := tool
		if name == "" && rc != nil {
			name = rc.target // a prompt's name, a resource's URI
		}
		return nil, blocked("result", name, gr)
	case config.ActionRedact:
		b, err := json.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("redact result: %w", err)
		}
		var red R
		if err := json.Unmarshal(b, &red); err != nil {
			return nil, fmt.Errorf("redact result: %w", err)
		}
		return &red, nil
	}
	return res, nil
}

// decodedJSON returns the JSON a tool result was decoded from (see
// mcp.CallToolResult.DecodedJSON), nil for any other result.
func decodedJSON(res any) []byte {
	if r, ok := res.(*mcp.CallToolResult); ok {
		return r.DecodedJSON()
	}
	return nil
}

// wasOrWere agrees with what: "arguments were", "result was".
func wasOrWere(what string) string {
	if strings.HasSuffix(what, "s") {
		return "were"
	}
	return "was"
}

func blocked(what, name string, res guard.Result) error {
	var rule, kind string
	for _, fd := range res.Findings {
		if fd.Action == config.ActionBlock || fd.Action == config.ActionRequireApproval {
			rule, kind = fd.Rule, fd.Kind
			break
		}
	}
	return &jsonrpc.Error{Code: CodeGuardrailBlocked,
		Message: fmt.Sprintf("the %s of %q %s blocked by guardrail %q (%s)", what, name, wasOrWere(what), rule, kind),
		Data:    mustJSON(map[string]any{"rule": rule, "kind": kind})}
}

// findingSummary lists the kinds found, never the text.
func findingSummary(fs []guard.Finding) string {
	var kinds []string
	seen := map[string]bool{}
	for _, f := range fs {
		if !seen[f.Kind] {
			seen[f.Kind] = true
			kinds = append(kinds, f.Kind)
		}
	}
	return strings.Join(kinds, ", ")
}

func matchedGrants(d policy.Decision) []string {
	out := make([]string, 0, len(d.Matched))
	for _, m := range d.Matched {
		out = append(out, m.Grant)
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// filterList keeps, of a list result, what the principal may use: an agent
// never sees a tool, prompt or resource no grant lets it use.
func (f *face) filterList(req mcp.Request, res mcp.Result) {
	snap := f.g.snap.Load()
	vs := snap.VS[f.name]
	if vs == nil || res == nil {
		return
	}
	p := principalOf(req)
	visible := func(kind policy.Kind, name string, r *Route) bool {
		return snap.access.policy.Visible(newPolicyRequest(p, f.name, kind, name, r))
	}
	switch r := res.(type) {
	case *mcp.ListToolsResult:
		r.Tools = keep(r.Tools, func(t *mcp.Tool) bool { return visible(policy.KindTool, t.Name, vs.Tools[t.Name]) })
	case *mcp.ListPromptsResult:
		r.Prompts = keep(r.Prompts, func(p *mcp.Prompt) bool { return visible(policy.KindPrompt, p.Name, vs.Prompts[p.Name]) })
	case *mcp.ListResourcesResult:
		r.Resources = keep(r.Resources, func(x *mcp.Resource) bool { return visible(policy.KindResource, x.URI, vs.Resources[x.URI]) })
	case *mcp.ListResourceTemplatesResult:
		r.ResourceTemplates = keep(r.ResourceTemplates, func(x *mcp.ResourceTemplate) bool {
			return visible(policy.KindResource, x.URITemplate, vs.Templates[x.URITemplate])
		})
	}
}

func keep[T any](in []T, ok func(T) bool) []T {
	out := make([]T, 0, len(in))
	for _, v := range in {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}

// mayUse reports whether the principal of req may see name in the virtual
// server: a name it may not see is answered exactly like a name that does
// not exist, so probing reveals nothing.
func (f *face) mayUse(req mcp.Request, vs *VirtualServer, kind policy.Kind, name string, r *Route) bool {
	return f.g.snap.Load().access.policy.Visible(newPolicyRequest(principalOf(req), vs.Name, kind, name, r))
}

// Explanation is what [Gateway.Explain] found.
type Explanation struct {
	Decision  policy.Decision
	Visible   bool
	Findings  []guard.Finding
	RateLimit string
}

// Explain decides a call of tool in virtual server vs by agent with args as
// the data path would, without calling anything or consuming rate limits.
func (g *Gateway) Explain(agent, vs, tool string, args map[string]any) (*Explanation, error) {
	snap := g.snap.Load()
	v := snap.VS[vs]
	if v == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownVirtualServer, vs)
	}
	p := snap.principal(agent)
	r := v.Tools[tool]
	pr := newPolicyRequest(p, vs, policy.KindTool, tool, r)
	pr.Args, pr.Explain = args, true
	e := &Explanation{Decision: snap.access.policy.Decide(pr), Visible: r != nil && snap.access.policy.Visible(pr)}
	if r == nil {
		e.Decision.Reason = fmt.Sprintf("virtual server %q exposes no tool %q (unknown, hidden by its selections, or withheld by pinning)", vs, tool)
		e.Decision.Effect = config.EffectDeny
	}
	if args != nil && !snap.access.guards.Empty() {
		var root any = cloneJSON(args)
		_, res := snap.access.guards.Check(config.DirectionRequest, vs, tool, "args", root)
		e.Findings = res.Findings
	}
	if ok, rule, _ := g.limiter.Peek(p, vs, tool, time.Now()); !ok {
		e.RateLimit = rule
	}
	return e, nil
}

// principal returns the principal of a configured agent (by name), as its
// API key would authenticate it.
func (s *Snapshot) principal(agent string) *identity.Principal {
	for _, a := range s.Doc.Agents {
		if a.Name == agent {
			p := agentPrincipal(a)
			p.Method = "api_key"
			return p
		}
	}
	return &identity.Principal{Agent: agent, Method: "explain"}
}

func cloneJSON(v map[string]any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// confusables maps look-alike letters (Cyrillic, Greek, fullwidth digits'
// common stand-ins) to the Latin ones they imitate.
var confusables = strings.NewReplacer(
	"а", "a", "е", "e", "о", "o", "р", "p", "с", "c", "х", "x", "у", "y", "і", "i", "ј", "j", "ѕ", "s", "ԁ", "d", "һ", "h", "ӏ", "l",
	"α", "a", "ο", "o", "ρ", "p", "τ", "t", "υ", "u", "ν", "v", "ι", "i", "κ", "k",
	"0", "o", "1", "l", "_", "", "-", "", ".", "", " ", "",
)

// skeleton is how a name looks to a person: case, separators and
// look-alike letters folded.
func skeleton(name string) string { return confusables.Replace(strings.ToLower(name)) }

// shadowing reports exposed tools whose names imitate another tool's (the
// same skeleton, different name), within or across virtual servers: an
// agent (or its model) may call the imitation meaning the original.
func shadowing(vss map[string]*VirtualServer) []string {
	type seen struct{ vs, name string }
	first := map[string][]seen{}
	names := make([]string, 0, len(vss))
	for n := range vss {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []string
	for _, vn := range names {
		for _, t := range vss[vn].ToolDefs {
			sk := skeleton(t.Name)
			for _, o := range first[sk] {
				if o.name != t.Name {
					out = append(out, fmt.Sprintf("tool %q in virtual server %q imitates tool %q in virtual server %q", t.Name, vn, o.name, o.vs))
				}
			}
			first[sk] = append(first[sk], seen{vn, t.Name})
		}
	}
	return out
}
