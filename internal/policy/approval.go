package policy

/*
Approval rules in decisions.

An approval rule says who approves a call that needs approval; the gateway
looks it up by name with [Policy.ApprovalRule] when it holds a call. Rules
whose virtual_servers or tools are given (config.ApprovalRule.HoldsCalls)
also hold calls by themselves: they are consulted only after the grants
allowed a tool call, so they can turn allow into require_approval but never
allow anything, and a deny or a require_approval grant keeps deciding. The
first such rule, in name order, whose globs match the virtual server and the
exposed tool name and whose when holds decides; prompts and resources are
never held by rules.

Rules are compiled once, with the grants. A decision that the grants deny,
or that touches no tool, never looks at them; an allowed tool call with no
rule that holds calls costs one length check. A rule's when fails closed: an
evaluation error (a missing argument, a type mismatch, the cost limit) holds
the call, as a deny grant's error denies, and the match's reason carries the
error.
*/

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// matchPrefix starts [Match.Grant] for a match that is an approval rule
// holding the call by itself, so that lists of matched grants (logs,
// explanations) show it.
const matchPrefix = "approval_rule:"

// holdRule is a compiled approval rule that holds calls by itself.
type holdRule struct {
	name  string
	vss   globs // nil list in the rule: every virtual server
	tools globs // nil list in the rule: every tool
	when  *program

	// Precomputed texts, so a decision allocates no strings.
	match     string // Match.Grant
	reason    string // Match.Reason
	decidedBy string // Decision.Reason
}

// compileRules compiles rules (with the document's defaults applied to a
// copy): it returns the rules that hold calls by themselves, in name order,
// and every rule by name (the first of a duplicated name).
func compileRules(rules []config.ApprovalRule) ([]*holdRule, map[string]config.ApprovalRule, []*config.FieldError) {
	if len(rules) == 0 {
		return nil, nil, nil
	}
	x := config.Document{ApprovalRules: append([]config.ApprovalRule(nil), rules...)}
	x.ApplyDefaults()
	byName := make(map[string]config.ApprovalRule, len(rules))
	var holds []*holdRule
	var errs []*config.FieldError
	for i, r := range x.ApprovalRules {
		p := fmt.Sprintf("approval_rules[%d]", i)
		if _, dup := byName[r.Name]; !dup {
			byName[r.Name] = r
		}
		var when *program
		if r.When != "" {
			prg, err := compileExpr(ExprWhen, r.When)
			if err != nil {
				errs = append(errs, &config.FieldError{Path: p + ".when", Reason: err.Error()})
			}
			when = prg
		}
		if !r.HoldsCalls() {
			continue
		}
		vss, verrs := compileRuleGlobs(r.VirtualServers, p+".virtual_servers")
		tools, terrs := compileRuleGlobs(r.Tools, p+".tools")
		errs = append(errs, verrs...)
		errs = append(errs, terrs...)
		h := &holdRule{name: r.Name, vss: vss, tools: tools, when: when,
			match:     matchPrefix + r.Name,
			decidedBy: "approval rule " + r.Name + " requires approval",
		}
		var why []string
		if r.VirtualServers != nil {
			why = append(why, "virtual_servers "+quoteList(r.VirtualServers))
		}
		if r.Tools != nil {
			why = append(why, "tools "+quoteList(r.Tools))
		}
		if when != nil {
			why = append(why, "when true")
		}
		h.reason = strings.Join(why, "; ")
		holds = append(holds, h)
	}
	sort.SliceStable(holds, func(i, j int) bool { return holds[i].name < holds[j].name })
	return holds, byName, errs
}

// compileRuleGlobs compiles a rule's list, where nil means every name.
func compileRuleGlobs(pats []string, p string) (globs, []*config.FieldError) {
	if pats == nil {
		return globs{{kind: globAll}}, nil
	}
	return compileGlobs(pats, p)
}

// hold applies the rules that hold calls by themselves to a tool call the
// grants allowed: the first that matches turns d into require_approval
// under its name and is appended to d.Matched.
func (p *Policy) hold(e *evaluator, r *Request, d *Decision) {
	for _, h := range p.holds {
		if !h.vss.match(r.VirtualServer) || !h.tools.matchRequest(r, config.EffectRequireApproval) {
			continue
		}
		reason := h.reason
		if h.when != nil {
			ok, err := e.eval(h.when)
			switch {
			case err != nil:
				reason = strings.TrimSuffix(reason, "; when true") + "; evaluation failed, the rule holds the call (fails closed): " + err.Error()
			case !ok:
				continue
			}
		}
		d.Matched = append(d.Matched, Match{Grant: h.match, Effect: config.EffectRequireApproval, Reason: reason})
		d.Effect, d.Reason, d.Approval = config.EffectRequireApproval, h.decidedBy, h.name
		return
	}
}

// ApprovalRule returns the approval rule named name, with its defaults
// applied. For "" and for a name the policy's rules lack, it returns the
// rule named "default" if there is one, else [config.DefaultApprovalRule].
// The rule's slices are shared: callers must not modify them.
func (p *Policy) ApprovalRule(name string) config.ApprovalRule {
	if p != nil {
		if r, ok := p.rules[name]; ok && name != "" {
			return r
		}
		if r, ok := p.rules[config.DefaultApprovalRuleName]; ok {
			return r
		}
	}
	return config.DefaultApprovalRule
}
