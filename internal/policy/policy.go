package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Kind is the kind of feature a request touches.
type Kind string

// Kinds of features.
const (
	KindTool     Kind = "tool"
	KindResource Kind = "resource" // resources and resource templates
	KindPrompt   Kind = "prompt"
)

func (k Kind) index() int {
	switch k {
	case KindTool:
		return 0
	case KindResource:
		return 1
	case KindPrompt:
		return 2
	}
	return -1
}

// Request is what a decision is about.
type Request struct {
	// Principal is the caller; nil means [identity.Anonymous].
	Principal     *identity.Principal
	VirtualServer string
	Kind          Kind
	// Name is the name the virtual server exposes: a tool or prompt name,
	// or a resource (template) URI. Matching is exact and case-sensitive.
	Name string
	// Upstream is the upstream serving the feature, for CEL's tool.upstream.
	Upstream string
	// UpstreamName is the tool's or prompt's name at its upstream when the
	// virtual server exposes it under another (a rename); "" otherwise.
	// Deny and require_approval grants, and approval rules, match it as
	// well as Name, so that renaming a tool does not take it out of the
	// controls written for it; allow grants match Name only, so a rename
	// grants nothing.
	UpstreamName string
	// Annotations are the tool's annotations (readOnlyHint, ...), for CEL's
	// tool.annotations; nil means none.
	Annotations map[string]any
	// Args are the call's arguments (tools, prompts) as decoded from JSON;
	// nil for lists.
	Args map[string]any
	// Time is when the request arrived, for CEL's request.time; zero means
	// now.
	Time     time.Time
	SourceIP string
	// Explain asks for [Decision.Unmet] too (explainDecision).
	Explain bool
}

// Match is one grant, or approval rule, that matched a request.
type Match struct {
	// Grant is the grant's name, or "grants[i]" when it has none; for an
	// approval rule that held the call by itself, "approval_rule:" and the
	// rule's name.
	Grant  string
	Effect string
	// Reason says why it matched, e.g.
	// `subject team qa; target tools ["read_*"]; when true`, or for a rule
	// `tools ["deploy_*"]; when true`.
	Reason string
}

// ApprovalRule returns the rule's name when m is an approval rule that held
// the call by itself, and "" when m is a grant.
func (m Match) ApprovalRule() string {
	if rule, ok := strings.CutPrefix(m.Grant, matchPrefix); ok {
		return rule
	}
	return ""
}

// Decision is the outcome of [Policy.Decide].
type Decision struct {
	// Effect is allow, deny or require_approval.
	Effect string
	// Reason is a short text for logs and explanations. It names grants
	// and tools, so it is not for the agent: a denied agent gets a generic
	// message.
	Reason string
	// Matched lists every grant that matched, in config order, including
	// those outranked by the deciding one, and last the approval rule that
	// held the call by itself, if one did.
	Matched []Match
	// Unmet lists, when the request asked for an explanation
	// ([Request.Explain]), the grants whose subject and target match but
	// whose condition (claim subject, when) did not hold, in config order,
	// with why: what to look at when a call is refused that one expected
	// allowed.
	Unmet []Match
	// Approval is the approval rule of the deciding require_approval grant,
	// or the rule that held the call by itself ("" for the default rule, or
	// when Effect is not require_approval). [Policy.ApprovalRule] returns
	// the rule.
	Approval string
}

// Policy is the grants and approval rules of one snapshot, compiled once.
// It is immutable and safe for concurrent use.
type Policy struct {
	// byVS indexes grants by virtual server and kind, in config order.
	byVS map[string]*[3][]*grant
	// holds are the approval rules that hold calls by themselves, in name
	// order (see approval.go).
	holds []*holdRule
	// rules are all approval rules by name, with defaults applied.
	rules map[string]config.ApprovalRule
}

type grant struct {
	name     string
	effect   string
	approval string
	subject  subject
	targets  [3]globs // by Kind.index
	when     *program

	// Precomputed texts, so a decision allocates no strings.
	reasons   [3]string // Match.Reason by Kind.index
	decidedBy string    // Decision.Reason when this grant decides
}

// Compile compiles grants and approval rules (a document's Grants and
// ApprovalRules): globs are classified, CEL expressions are compiled to
// programs, grants are indexed by virtual server, and the rules that hold
// calls by themselves are ordered by name. An invalid grant or rule yields
// a *[config.ValidationError] listing every problem, with paths like
// "grants[3].when" or "approval_rules[0].when" and reasons carrying CEL's
// message and position ("1:6: undeclared reference to 'argz'").
func Compile(grants []config.Grant, rules ...config.ApprovalRule) (*Policy, error) {
	p := &Policy{byVS: map[string]*[3][]*grant{}}
	var errs []*config.FieldError
	for i := range grants {
		g, gerrs := compileGrant(&grants[i], fmt.Sprintf("grants[%d]", i))
		if len(gerrs) > 0 {
			errs = append(errs, gerrs...)
			continue
		}
		vs := grants[i].Target.VirtualServer
		idx := p.byVS[vs]
		if idx == nil {
			idx = new([3][]*grant)
			p.byVS[vs] = idx
		}
		for k := range g.targets {
			if g.targets[k] != nil {
				idx[k] = append(idx[k], g)
			}
		}
	}
	var rerrs []*config.FieldError
	p.holds, p.rules, rerrs = compileRules(rules)
	errs = append(errs, rerrs...)
	if len(errs) > 0 {
		return nil, &config.ValidationError{Fields: errs}
	}
	return p, nil
}

func compileGrant(cg *config.Grant, p string) (*grant, []*config.FieldError) {
	var errs []*config.FieldError
	g := &grant{name: cg.Name, effect: cg.Effect, approval: cg.Approval}
	if g.name == "" {
		g.name = p
	}
	switch cg.Effect {
	case config.EffectAllow:
		g.decidedBy = "allowed by grant " + g.name
	case config.EffectDeny:
		g.decidedBy = "denied by grant " + g.name
	case config.EffectRequireApproval:
		g.decidedBy = "grant " + g.name + " requires approval"
	default:
		errs = append(errs, &config.FieldError{Path: p + ".effect", Reason: fmt.Sprintf("must be allow, deny or require_approval, got %q", cg.Effect)})
	}
	s := cg.Subject
	n := 0
	for _, f := range []string{s.Agent, s.Team, s.Role, s.Claim} {
		if f != "" {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, &config.FieldError{Path: p + ".subject", Reason: "give exactly one of agent, team, role or claim"})
	} else {
		sub, err := compileSubject(cg.Subject, p+".subject")
		if err != nil {
			errs = append(errs, err)
		}
		g.subject = sub
	}
	if cg.Target.VirtualServer == "" {
		errs = append(errs, &config.FieldError{Path: p + ".target.virtual_server", Reason: "required"})
	}
	lists := [3][]string{cg.Target.Tools, cg.Target.Resources, cg.Target.Prompts}
	names := [3]string{"tools", "resources", "prompts"}
	for k, pats := range lists {
		gs, gerrs := compileGlobs(pats, p+".target."+names[k])
		errs = append(errs, gerrs...)
		g.targets[k] = gs
	}
	if cg.When != "" {
		prg, err := compileExpr(ExprWhen, cg.When)
		if err != nil {
			errs = append(errs, &config.FieldError{Path: p + ".when", Reason: err.Error()})
		}
		g.when = prg
	}
	for k, pats := range lists {
		r := fmt.Sprintf("subject %s; target %s %s", g.subject.desc, names[k], quoteList(pats))
		if g.when != nil {
			r += "; when true"
		}
		g.reasons[k] = r
	}
	return g, errs
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// outcome of matching one grant against a request.
type outcome uint8

const (
	noMatch outcome = iota
	matched
	// failedClosed: a deny grant whose claim or when could not be
	// evaluated, counted as matched.
	failedClosed
)

// evaluator carries the lazily built CEL activation across the grants of
// one decision.
type evaluator struct {
	r   *Request
	p   *identity.Principal
	act *activation
}

func (e *evaluator) eval(prg *program) (bool, error) {
	if e.act == nil {
		e.act = getActivation(e.r, e.p)
	}
	return prg.eval(e.act)
}

func (e *evaluator) release() { putActivation(e.act) }

// match matches g against the request whose name is name; the subject's
// static part and the target are checked by the caller. It evaluates the
// claim and the when condition. Evaluation errors fail closed: they match a
// deny grant and do not match others. With visible set, a when that is not
// static counts as true for allow and require_approval grants and as false
// for deny grants (it may apply at call time, or not).
func (g *grant) match(e *evaluator, visible bool) (outcome, error) {
	deny := g.effect == config.EffectDeny
	if g.subject.claim != nil {
		ok, err := e.eval(g.subject.claim)
		switch {
		case err != nil && deny:
			return failedClosed, fmt.Errorf("subject claim: %w", err)
		case err != nil || !ok:
			return noMatch, nil
		}
	}
	if g.when == nil {
		return matched, nil
	}
	if visible && !g.when.static {
		if deny {
			return noMatch, nil
		}
		return matched, nil
	}
	ok, err := e.eval(g.when)
	switch {
	case err != nil && deny:
		return failedClosed, fmt.Errorf("when: %w", err)
	case err != nil || !ok:
		return noMatch, nil
	}
	return matched, nil
}

// unmet says why g's condition did not hold for the request of e, whose
// kind has index k (its subject and target match).
func (g *grant) unmet(e *evaluator, k int) string {
	base := strings.TrimSuffix(g.reasons[k], "; when true")
	if g.subject.claim != nil {
		ok, err := e.eval(g.subject.claim)
		switch {
		case err != nil:
			return base + "; subject claim failed, so the grant does not apply: " + err.Error()
		case !ok:
			return base + "; subject claim false, so the grant does not apply"
		}
	}
	if g.when != nil {
		if ok, err := e.eval(g.when); err != nil {
			return base + "; when failed, so the grant does not apply: " + err.Error()
		} else if !ok {
			return base + "; when false, so the grant does not apply"
		}
	}
	return base + "; does not apply"
}

// Decide decides r: deny if any matching grant denies, else
// require_approval if any matching grant requires it, else allow if any
// matching grant allows, else deny. A tool call the grants allow needs
// approval after all when an approval rule holds it (see approval.go). It
// never panics; see the package documentation for how evaluation errors
// count.
func (p *Policy) Decide(r *Request) Decision {
	if r == nil {
		return Decision{Effect: config.EffectDeny, Reason: "no request"}
	}
	k := r.Kind.index()
	if k < 0 {
		return Decision{Effect: config.EffectDeny, Reason: fmt.Sprintf("unknown request kind %q", r.Kind)}
	}
	pr := r.Principal
	if pr == nil {
		pr = identity.Anonymous
	}
	var candidates []*grant
	if p != nil {
		if idx := p.byVS[r.VirtualServer]; idx != nil {
			candidates = idx[k]
		}
	}
	e := evaluator{r: r, p: pr}
	defer e.release()
	var d Decision
	var allow, approve, deny *grant
	for _, g := range candidates {
		if !g.subject.matchStatic(pr) || !g.targets[k].matchRequest(r, g.effect) {
			continue
		}
		out, err := g.match(&e, false)
		if out == noMatch {
			if r.Explain {
				d.Unmet = append(d.Unmet, Match{Grant: g.name, Effect: g.effect, Reason: g.unmet(&e, k)})
			}
			continue
		}
		m := Match{Grant: g.name, Effect: g.effect, Reason: g.reasons[k]}
		if out == failedClosed {
			m.Reason = strings.TrimSuffix(m.Reason, "; when true") + "; evaluation failed, deny fails closed: " + err.Error()
		}
		if d.Matched == nil {
			d.Matched = make([]Match, 0, 4)
		}
		d.Matched = append(d.Matched, m)
		switch g.effect {
		case config.EffectDeny:
			if deny == nil {
				deny = g
			}
		case config.EffectRequireApproval:
			if approve == nil {
				approve = g
			}
		case config.EffectAllow:
			if allow == nil {
				allow = g
			}
		}
	}
	switch {
	case deny != nil:
		d.Effect, d.Reason = config.EffectDeny, deny.decidedBy
	case approve != nil:
		d.Effect, d.Reason, d.Approval = config.EffectRequireApproval, approve.decidedBy, approve.approval
	case allow != nil:
		d.Effect, d.Reason = config.EffectAllow, allow.decidedBy
		if r.Kind == KindTool && len(p.holds) > 0 {
			p.hold(&e, r, &d)
		}
	default:
		d.Effect = config.EffectDeny
		d.Reason = fmt.Sprintf("no grant allows %s %q on virtual server %q for agent %q", r.Kind, r.Name, r.VirtualServer, pr.Agent)
	}
	return d
}

// Visible reports whether r could be allowed (or approved), for filtering
// lists: r.Args is ignored. A grant's when that is static (reads neither
// args nor the request's time) is evaluated exactly. A when that is not
// static may hold at call time: it counts as true for allow and
// require_approval grants, and a deny grant with such a when does not hide.
// A deny that surely applies hides.
func (p *Policy) Visible(r *Request) bool {
	if p == nil || r == nil {
		return false
	}
	k := r.Kind.index()
	if k < 0 {
		return false
	}
	idx := p.byVS[r.VirtualServer]
	if idx == nil {
		return false
	}
	pr := r.Principal
	if pr == nil {
		pr = identity.Anonymous
	}
	e := evaluator{r: r, p: pr}
	defer e.release()
	possible := false
	for _, g := range idx[k] {
		if !g.subject.matchStatic(pr) || !g.targets[k].matchRequest(r, g.effect) {
			continue
		}
		if possible && g.effect != config.EffectDeny {
			continue // nothing left to learn from another allow
		}
		out, _ := g.match(&e, true)
		switch {
		case out == noMatch:
		case g.effect == config.EffectDeny:
			return false
		default:
			possible = true
		}
	}
	return possible
}
