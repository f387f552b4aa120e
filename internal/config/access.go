package config

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Effects of a grant.
const (
	EffectAllow           = "allow"
	EffectDeny            = "deny"
	EffectRequireApproval = "require_approval"
)

// Grant binds a subject to a target with an effect. A call is allowed only
// if some allow grant matches it and no deny grant does; no matching grant
// means deny. require_approval outranks allow and is outranked by deny.
type Grant struct {
	// Name identifies the grant in decisions, explanations and audit
	// events. Optional in files; the store names unnamed grants.
	Name        string  `yaml:"name"`
	Description string  `yaml:"description"`
	Subject     Subject `yaml:"subject"`
	Target      Target  `yaml:"target"`
	// Effect is allow, deny or require_approval.
	Effect string `yaml:"effect"`
	// When is an optional CEL condition over principal, tool, args and
	// request; the grant matches only when it is true.
	When string `yaml:"when"`
	// Approval names the approval rule (of ApprovalRules) governing
	// require_approval calls; empty means the default rule (see
	// [DefaultApprovalRule]).
	Approval string `yaml:"approval"`
}

// Subject says whom a grant, rate limit or rule applies to: exactly one of
// an agent name, a team, a role, or a CEL expression over the identity
// provider's claims ("claims.groups.exists(g, g == \"sre\")"). Agent "*"
// means every authenticated agent.
type Subject struct {
	Agent string `yaml:"agent"`
	Team  string `yaml:"team"`
	Role  string `yaml:"role"`
	Claim string `yaml:"claim"`
}

// Kind returns which field of s is set ("agent", "team", "role", "claim")
// and its value; "" when none is.
func (s Subject) Kind() (kind, value string) {
	switch {
	case s.Agent != "":
		return "agent", s.Agent
	case s.Team != "":
		return "team", s.Team
	case s.Role != "":
		return "role", s.Role
	case s.Claim != "":
		return "claim", s.Claim
	}
	return "", ""
}

func (s Subject) count() int {
	n := 0
	for _, f := range []string{s.Agent, s.Team, s.Role, s.Claim} {
		if f != "" {
			n++
		}
	}
	return n
}

// Target is what a grant covers: features of one virtual server, by the
// names the virtual server exposes (globs, path.Match syntax). A nil list
// covers nothing of that kind. Resources covers resource URIs and resource
// template URIs.
type Target struct {
	VirtualServer string   `yaml:"virtual_server"`
	Tools         []string `yaml:"tools"`
	Resources     []string `yaml:"resources"`
	Prompts       []string `yaml:"prompts"`
}

// Guardrail directions, detectors and actions.
const (
	DirectionRequest  = "request"
	DirectionResponse = "response"
	DirectionBoth     = "both"

	DetectorSecrets   = "secrets"
	DetectorPII       = "pii"
	DetectorInjection = "injection"
	DetectorRegex     = "regex"
	DetectorDenylist  = "denylist"
	DetectorSize      = "size"

	ActionBlock           = "block"
	ActionRedact          = "redact"
	ActionFlag            = "flag"
	ActionRequireApproval = "require_approval"
)

// Guardrail inspects tool arguments (request), results (response) or both,
// and acts on what its detector finds.
type Guardrail struct {
	Name string `yaml:"name"`
	// Direction is request, response or both. Default both.
	Direction string `yaml:"direction"`
	// Scope limits the rule; empty means every virtual server and tool.
	Scope Scope `yaml:"scope"`
	// Detector is secrets, pii, injection, regex, denylist or size.
	Detector string `yaml:"detector"`
	// Kinds narrows secrets and pii detectors to some kinds (e.g.
	// aws_access_key, email); empty means all.
	Kinds []string `yaml:"kinds"`
	// Pattern is the regular expression (RE2) of a regex detector.
	Pattern string `yaml:"pattern"`
	// Terms are the words or phrases of a denylist detector
	// (case-insensitive).
	Terms []string `yaml:"terms"`
	// MaxBytes is the limit of a size detector (JSON-encoded arguments or
	// result).
	MaxBytes int64 `yaml:"max_bytes"`
	// Threshold is the score (0..1) from which an injection detector fires.
	// Default 0.5.
	Threshold float64 `yaml:"threshold"`
	// Action is block, redact, flag or require_approval.
	Action string `yaml:"action"`
	// Disabled keeps the rule without evaluating it.
	Disabled bool `yaml:"disabled"`
}

// Scope narrows a guardrail or rate limit to a virtual server and to tools
// (globs over exposed names).
type Scope struct {
	VirtualServer string   `yaml:"virtual_server"`
	Tools         []string `yaml:"tools"`
}

// RateLimit is a token bucket (kept in memory per replica): Requests calls
// per Per, with bursts up to Burst.
type RateLimit struct {
	Name string `yaml:"name"`
	// Subject limits whom it applies to; empty means everyone.
	Subject Subject `yaml:"subject"`
	// Scope limits what it counts; empty means every call.
	Scope Scope `yaml:"scope"`
	// Key is what one bucket counts: agent (each agent its own bucket,
	// the default), team, tool, or global.
	Key      string   `yaml:"key"`
	Requests int      `yaml:"requests"`
	Per      Duration `yaml:"per"`
	// Burst is the bucket's size. Default Requests.
	Burst int `yaml:"burst"`
}

// What an approval rule does when nobody decides in time.
const (
	OnTimeoutDeny     = "deny"
	OnTimeoutEscalate = "escalate"
)

// Defaults of an [ApprovalRule], applied by [Document.ApplyDefaults].
const (
	DefaultApprovalQuorum  = 1
	DefaultApprovalTimeout = time.Hour
	// DefaultApprovalRuleName names the rule that governs calls needing
	// approval without naming a rule; see [DefaultApprovalRule].
	DefaultApprovalRuleName = "default"
)

// DefaultApprovalRule governs a call that needs approval when no rule is
// named (a guardrail with action require_approval, a require_approval grant
// without approval) and the document has no rule named "default": one
// member of the approver group approves within an hour, or the call is
// denied. Callers must not modify its slices.
var DefaultApprovalRule = ApprovalRule{
	Name:           DefaultApprovalRuleName,
	ApproverGroups: []string{"approver"},
	Quorum:         DefaultApprovalQuorum,
	Timeout:        Duration(DefaultApprovalTimeout),
	OnTimeout:      OnTimeoutDeny,
}

// ApprovalRule says who approves a call that needs approval, how many
// must, and what happens when nobody answers in time. Grants name it in
// approval. A rule with virtual_servers or tools (either given, even
// empty) also holds calls by itself: a tool call that the grants allow, on
// a virtual server and with an exposed tool name its globs match, and for
// which when holds, needs approval under this rule. A rule with neither
// applies only through grants that name it.
type ApprovalRule struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// ApproverGroups are the teams or roles whose members may approve; at
	// least one.
	ApproverGroups []string `yaml:"approver_groups"`
	// Quorum is how many distinct approvers must approve. Default 1.
	Quorum int `yaml:"quorum"`
	// AllowSameTeam lets members of the calling agent's own team approve.
	// Off by default.
	AllowSameTeam bool `yaml:"allow_same_team"`
	// Timeout is how long to wait for a quorum. Default 1h.
	Timeout Duration `yaml:"timeout"`
	// OnTimeout is deny (the default) or escalate (ask EscalateTo next).
	OnTimeout string `yaml:"on_timeout"`
	// EscalateTo are the groups asked after a timeout; required for
	// on_timeout escalate.
	EscalateTo []string `yaml:"escalate_to"`
	// ReuseWindow is how long an approval also covers identical calls
	// (same agent, virtual server, tool and arguments). Zero, the default,
	// approves every call on its own.
	ReuseWindow Duration `yaml:"reuse_window"`
	// VirtualServers and Tools are the calls the rule holds by itself
	// (globs, path.Match syntax, over virtual server names and exposed tool
	// names). A nil list means all, an empty one none; with both nil the
	// rule holds nothing by itself.
	VirtualServers []string `yaml:"virtual_servers"`
	Tools          []string `yaml:"tools"`
	// When is an optional CEL condition over principal, tool, args and
	// request, as a grant's; the rule holds a call by itself only when it
	// is true. Empty means always.
	When string `yaml:"when"`
}

// HoldsCalls reports whether r holds calls for approval by itself, that is
// whether VirtualServers or Tools is given.
func (r *ApprovalRule) HoldsCalls() bool { return r.VirtualServers != nil || r.Tools != nil }

// Pinning modes.
const (
	PinningAuto    = "auto"
	PinningApprove = "approve"
	PinningOff     = "off"
)

// Pinning configures the tool-definition pinning (rug-pull defence).
type Pinning struct {
	// Mode is auto (a tool's first definition is pinned when first seen),
	// approve (new tools stay hidden until an admin approves them) or off.
	// Default auto. Either way, a pinned tool whose definition changes is
	// quarantined until an admin approves the new definition.
	Mode string `yaml:"mode"`
}

// Pin is an approved tool definition, kept by the config store (not
// written in files).
type Pin struct {
	Upstream string
	Tool     string
	// Hash is the approved definition's hash; "" means known but never
	// approved (held for approval).
	Hash string
}

// validate checks g; rules holds the names of the document's approval
// rules, nil when it lists none (grants may then name rules of the config
// store, which the store checks).
func (g *Grant) validate(v *validator, p string, vsNames, rules, seen map[string]bool) {
	if g.Name != "" {
		checkName(v, p+".name", g.Name, seen)
	}
	if g.Approval != "" && rules != nil && !rules[g.Approval] {
		v.add(p+".approval", "unknown approval rule %q (list it under approval_rules, or leave approval empty for the default rule)", g.Approval)
	}
	validateSubject(v, p+".subject", g.Subject, true)
	t := g.Target
	switch {
	case t.VirtualServer == "":
		v.add(p+".target.virtual_server", "required")
	case !vsNames[t.VirtualServer]:
		v.add(p+".target.virtual_server", "unknown virtual server %q", t.VirtualServer)
	}
	if t.Tools == nil && t.Resources == nil && t.Prompts == nil {
		v.add(p+".target", "give at least one of tools, resources or prompts (e.g. tools: [\"*\"])")
	}
	checkGlobs(v, p+".target.tools", t.Tools)
	checkGlobs(v, p+".target.resources", t.Resources)
	checkGlobs(v, p+".target.prompts", t.Prompts)
	switch g.Effect {
	case EffectAllow, EffectDeny, EffectRequireApproval:
	case "":
		v.add(p+".effect", "required: allow, deny or require_approval")
	default:
		v.add(p+".effect", "must be allow, deny or require_approval, got %q", g.Effect)
	}
	if len(g.When) > 4096 {
		v.add(p+".when", "longer than 4096 characters")
	}
}

func validateSubject(v *validator, p string, s Subject, required bool) {
	switch n := s.count(); {
	case n == 0 && required:
		v.add(p, "give one of agent, team, role or claim")
	case n > 1:
		v.add(p, "give only one of agent, team, role or claim")
	}
	if len(s.Claim) > 4096 {
		v.add(p+".claim", "longer than 4096 characters")
	}
}

func checkGlobs(v *validator, p string, globs []string) {
	for i, g := range globs {
		if g == "" {
			v.add(fmt.Sprintf("%s[%d]", p, i), "empty pattern")
			continue
		}
		if _, err := path.Match(g, ""); err != nil {
			v.add(fmt.Sprintf("%s[%d]", p, i), "bad pattern %q: %v", g, err)
		}
	}
}

// DetectorKinds lists, for each detector that has kinds, the kinds a
// guardrail may narrow it to. The guardrails' package fills it in (it
// knows what its detectors report); while it is nil, kinds are not checked.
var DetectorKinds map[string][]string

func (g *Guardrail) validate(v *validator, p string, vsNames map[string]bool, seen map[string]bool) {
	checkName(v, p+".name", g.Name, seen)
	switch g.Direction {
	case DirectionRequest, DirectionResponse, DirectionBoth:
	default:
		v.add(p+".direction", "must be request, response or both, got %q", g.Direction)
	}
	if g.Scope.VirtualServer != "" && !vsNames[g.Scope.VirtualServer] {
		v.add(p+".scope.virtual_server", "unknown virtual server %q", g.Scope.VirtualServer)
	}
	checkGlobs(v, p+".scope.tools", g.Scope.Tools)
	switch g.Detector {
	case DetectorSecrets, DetectorPII, DetectorInjection:
	case DetectorRegex:
		if g.Pattern == "" {
			v.add(p+".pattern", "required for detector regex")
		} else if _, err := regexp.Compile(g.Pattern); err != nil {
			v.add(p+".pattern", "bad regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	case DetectorDenylist:
		if len(g.Terms) == 0 {
			v.add(p+".terms", "required for detector denylist")
		}
		for i, t := range g.Terms {
			if strings.TrimSpace(t) == "" {
				v.add(fmt.Sprintf("%s.terms[%d]", p, i), "empty term")
			}
		}
	case DetectorSize:
		if g.MaxBytes <= 0 {
			v.add(p+".max_bytes", "required for detector size (a positive byte count)")
		}
	case "":
		v.add(p+".detector", "required: secrets, pii, injection, regex, denylist or size")
	default:
		v.add(p+".detector", "must be secrets, pii, injection, regex, denylist or size, got %q", g.Detector)
	}
	if len(g.Kinds) > 0 {
		known, ok := DetectorKinds[g.Detector]
		switch {
		case !ok && DetectorKinds != nil:
			v.add(p+".kinds", "only secrets, pii and injection detectors have kinds")
		case ok:
			for i, k := range g.Kinds {
				if !slices.Contains(known, k) {
					v.add(fmt.Sprintf("%s.kinds[%d]", p, i), "unknown %s kind %q (known: %s)", g.Detector, k, strings.Join(known, ", "))
				}
			}
		}
	}
	if g.Threshold < 0 || g.Threshold > 1 {
		v.add(p+".threshold", "must be between 0 and 1")
	}
	switch g.Action {
	case ActionBlock, ActionFlag, ActionRequireApproval:
	case ActionRedact:
		if g.Detector == DetectorSize {
			v.add(p+".action", "a size detector cannot redact; use block or flag")
		}
	case "":
		v.add(p+".action", "required: block, redact, flag or require_approval")
	default:
		v.add(p+".action", "must be block, redact, flag or require_approval, got %q", g.Action)
	}
}

func (r *RateLimit) validate(v *validator, p string, vsNames map[string]bool, seen map[string]bool) {
	checkName(v, p+".name", r.Name, seen)
	validateSubject(v, p+".subject", r.Subject, false)
	if r.Scope.VirtualServer != "" && !vsNames[r.Scope.VirtualServer] {
		v.add(p+".scope.virtual_server", "unknown virtual server %q", r.Scope.VirtualServer)
	}
	checkGlobs(v, p+".scope.tools", r.Scope.Tools)
	switch r.Key {
	case "agent", "team", "tool", "global":
	default:
		v.add(p+".key", "must be agent, team, tool or global, got %q", r.Key)
	}
	if r.Requests <= 0 {
		v.add(p+".requests", "must be positive")
	}
	if r.Per <= 0 {
		v.add(p+".per", "must be a positive duration, e.g. 1m")
	}
	if r.Burst < 0 {
		v.add(p+".burst", "must not be negative")
	}
}

func (r *ApprovalRule) validate(v *validator, p string, seen map[string]bool) {
	checkName(v, p+".name", r.Name, seen)
	if len(r.ApproverGroups) == 0 {
		v.add(p+".approver_groups", "give at least one team or role whose members may approve")
	}
	checkGroups(v, p+".approver_groups", r.ApproverGroups)
	if r.Quorum < 1 {
		v.add(p+".quorum", "must be at least 1")
	}
	if r.Timeout <= 0 {
		v.add(p+".timeout", "must be a positive duration, e.g. 1h")
	}
	switch r.OnTimeout {
	case OnTimeoutDeny:
	case OnTimeoutEscalate:
		if len(r.EscalateTo) == 0 {
			v.add(p+".escalate_to", "required for on_timeout escalate")
		}
	default:
		v.add(p+".on_timeout", "must be deny or escalate, got %q", r.OnTimeout)
	}
	checkGroups(v, p+".escalate_to", r.EscalateTo)
	if r.ReuseWindow < 0 {
		v.add(p+".reuse_window", "must not be negative")
	}
	checkGlobs(v, p+".virtual_servers", r.VirtualServers)
	checkGlobs(v, p+".tools", r.Tools)
	if len(r.When) > 4096 {
		v.add(p+".when", "longer than 4096 characters")
	}
}

// checkGroups checks the names of approver groups (teams or roles).
func checkGroups(v *validator, p string, groups []string) {
	for i, g := range groups {
		if !nameRE.MatchString(g) {
			v.add(fmt.Sprintf("%s[%d]", p, i), "%q: use letters, digits, '_', '.', '-' (max 128), starting with a letter or digit", g)
		}
	}
}

func (d *Document) validateAccess(v *validator, vsNames map[string]bool) {
	var rules map[string]bool
	if len(d.ApprovalRules) > 0 {
		rules = map[string]bool{}
	}
	for i := range d.ApprovalRules {
		d.ApprovalRules[i].validate(v, fmt.Sprintf("approval_rules[%d]", i), rules)
	}
	grants := map[string]bool{}
	for i := range d.Grants {
		d.Grants[i].validate(v, fmt.Sprintf("grants[%d]", i), vsNames, rules, grants)
	}
	guards := map[string]bool{}
	for i := range d.Guardrails {
		d.Guardrails[i].validate(v, fmt.Sprintf("guardrails[%d]", i), vsNames, guards)
	}
	limits := map[string]bool{}
	for i := range d.RateLimits {
		d.RateLimits[i].validate(v, fmt.Sprintf("rate_limits[%d]", i), vsNames, limits)
	}
	switch d.Pinning.Mode {
	case PinningAuto, PinningApprove, PinningOff:
	default:
		v.add("pinning.mode", "must be auto, approve or off, got %q", d.Pinning.Mode)
	}
}

func (d *Document) accessDefaults() {
	for i := range d.Guardrails {
		if d.Guardrails[i].Direction == "" {
			d.Guardrails[i].Direction = DirectionBoth
		}
		if d.Guardrails[i].Threshold == 0 && d.Guardrails[i].Detector == DetectorInjection {
			d.Guardrails[i].Threshold = 0.5
		}
	}
	for i := range d.RateLimits {
		r := &d.RateLimits[i]
		if r.Key == "" {
			r.Key = "agent"
		}
		if r.Burst == 0 {
			r.Burst = r.Requests
		}
	}
	for i := range d.ApprovalRules {
		r := &d.ApprovalRules[i]
		if r.Quorum == 0 {
			r.Quorum = DefaultApprovalQuorum
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultApprovalTimeout)
		}
		if r.OnTimeout == "" {
			r.OnTimeout = OnTimeoutDeny
		}
	}
	if d.Pinning.Mode == "" {
		d.Pinning.Mode = PinningAuto
	}
}
