package store

/*
Access control in the store: approval rules, grants, guardrails, rate limits
and the pinning mode, to and from the declarative document.

Approval rules, guardrails and rate limits have required, unique names: the
document and the store match them by name. Grant names are optional in files; a grant without
one is named after its content ([GrantName]: "grant-" and 12 hex digits of a
hash of its subject, target, effect, condition and approval rule), so that
applying the same file twice finds the grants it made, and decisions and
explanations can name every grant. A changed unnamed grant is, by that rule,
another grant: the old one stays unless the apply prunes. Grants stored
without a name (by a Gatehouse before issue #4) keep none: they are exported
under their content name and matched by content, so that exporting and
applying them changes nothing.

Deletions (with ApplyOptions.Prune) run before anything else is written, so
that a grant of a virtual server the document drops is listed in the plan
rather than deleted unseen by the cascade. Approval rules go after the grants
that name them, and a rule that a grant of the document still names is kept:
a document that lists no approval rules (written before rules were part of
the document) may name rules of the store, created through the admin API.
*/

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/approvalrule"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/ent/guardrailrule"
	"github.com/gatehouse-dev/gatehouse/ent/ratelimit"
	"github.com/gatehouse-dev/gatehouse/ent/setting"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// GrantName returns the name the store gives a grant that has none: "grant-"
// and the first 12 hex digits of the SHA-256 of its subject, target, effect,
// condition and approval rule. Equal grants get equal names; its name and
// description do not count.
func GrantName(g config.Grant) string {
	b, _ := json.Marshal(struct {
		Subject                config.Subject
		Target                 config.Target
		Effect, When, Approval string
	}{g.Subject, g.Target, g.Effect, g.When, g.Approval})
	sum := sha256.Sum256(b)
	return "grant-" + hex.EncodeToString(sum[:6])
}

// SubjectOf returns the config.Subject of a stored subject kind and value
// (of a grant or rate limit); the zero Subject for kind "".
func SubjectOf(kind, value string) config.Subject {
	var s config.Subject
	switch kind {
	case "agent":
		s.Agent = value
	case "team":
		s.Team = value
	case "role":
		s.Role = value
	case "claim":
		s.Claim = value
	}
	return s
}

// grantDoc needs g's virtual server and approval rule loaded. A grant
// stored without a name gets its [GrantName].
func grantDoc(g *ent.Grant) config.Grant {
	d := config.Grant{
		Name:        g.Name,
		Description: g.Description,
		Subject:     SubjectOf(g.SubjectKind.String(), g.Subject),
		Target:      config.Target{Tools: g.Tools, Resources: g.Resources, Prompts: g.Prompts},
		Effect:      g.Effect.String(),
		When:        g.When,
	}
	if vs := g.Edges.VirtualServer; vs != nil {
		d.Target.VirtualServer = vs.Name
	}
	if r := g.Edges.ApprovalRule; r != nil {
		d.Approval = r.Name
	}
	if d.Name == "" {
		d.Name = GrantName(d)
	}
	return d
}

// guardrailDoc needs r's virtual server loaded.
func guardrailDoc(r *ent.GuardrailRule) config.Guardrail {
	d := config.Guardrail{
		Name:      r.Name,
		Direction: r.Direction.String(),
		Scope:     config.Scope{Tools: r.Tools},
		Detector:  r.Detector.String(),
		Kinds:     r.Kinds,
		Pattern:   r.Pattern,
		Terms:     r.Terms,
		MaxBytes:  r.MaxBytes,
		Threshold: r.Threshold,
		Action:    r.Action.String(),
		Disabled:  !r.Enabled,
	}
	if vs := r.Edges.VirtualServer; vs != nil {
		d.Scope.VirtualServer = vs.Name
	}
	return d
}

// rateLimitDoc needs l's virtual server loaded.
func rateLimitDoc(l *ent.RateLimit) config.RateLimit {
	d := config.RateLimit{
		Name:     l.Name,
		Subject:  SubjectOf(l.SubjectKind.String(), l.Subject),
		Scope:    config.Scope{Tools: l.Tools},
		Key:      l.Key.String(),
		Requests: l.Requests,
		Per:      config.Duration(fromSeconds(l.PerSeconds)),
		Burst:    l.Burst,
	}
	if vs := l.Edges.VirtualServer; vs != nil {
		d.Scope.VirtualServer = vs.Name
	}
	return d
}

// approvalRuleDoc returns r as the document writes it; an empty
// escalate_to reads as absent.
func approvalRuleDoc(r *ent.ApprovalRule) config.ApprovalRule {
	d := config.ApprovalRule{
		Name:           r.Name,
		Description:    r.Description,
		ApproverGroups: r.ApproverGroups,
		Quorum:         r.Quorum,
		AllowSameTeam:  r.AllowSameTeam,
		Timeout:        config.Duration(fromSeconds(r.TimeoutSeconds)),
		OnTimeout:      r.OnTimeout.String(),
		EscalateTo:     r.EscalateTo,
		ReuseWindow:    config.Duration(fromSeconds(r.ReuseWindowSeconds)),
		VirtualServers: r.VirtualServers,
		Tools:          r.Tools,
		When:           r.When,
	}
	if len(d.EscalateTo) == 0 {
		d.EscalateTo = nil
	}
	return d
}

// exportAccess adds the store's approval rules, grants, guardrails, rate
// limits, pinning mode and pins to doc.
func exportAccess(ctx context.Context, client *ent.Client, doc *config.Document) error {
	rules, err := client.ApprovalRule.Query().Order(ent.Asc(approvalrule.FieldName)).All(ctx)
	if err != nil {
		return fmt.Errorf("export approval rules: %w", err)
	}
	for _, r := range rules {
		doc.ApprovalRules = append(doc.ApprovalRules, approvalRuleDoc(r))
	}
	grants, err := client.Grant.Query().WithVirtualServer().WithApprovalRule().All(ctx)
	if err != nil {
		return fmt.Errorf("export grants: %w", err)
	}
	sort.SliceStable(grants, byPriority(grants, func(g *ent.Grant) (int, string) { return g.Priority, grantDoc(g).Name }))
	seen := map[string]bool{}
	for _, g := range grants {
		d := grantDoc(g)
		if seen[d.Name] && g.Name == "" {
			continue // an unnamed grant stored twice: one decides the same
		}
		seen[d.Name] = true
		doc.Grants = append(doc.Grants, d)
	}
	guards, err := client.GuardrailRule.Query().WithVirtualServer().All(ctx)
	if err != nil {
		return fmt.Errorf("export guardrails: %w", err)
	}
	sort.SliceStable(guards, byPriority(guards, func(r *ent.GuardrailRule) (int, string) { return r.Priority, r.Name }))
	for _, r := range guards {
		doc.Guardrails = append(doc.Guardrails, guardrailDoc(r))
	}
	limits, err := client.RateLimit.Query().WithVirtualServer().Order(ent.Asc(ratelimit.FieldName)).All(ctx)
	if err != nil {
		return fmt.Errorf("export rate limits: %w", err)
	}
	for _, l := range limits {
		doc.RateLimits = append(doc.RateLimits, rateLimitDoc(l))
	}
	if doc.Pinning.Mode, err = PinningMode(ctx, client); err != nil {
		return err
	}
	doc.Pins, err = pins(ctx, client)
	return err
}

// byPriority orders l by priority, highest first, then by name.
func byPriority[T any](l []T, key func(T) (int, string)) func(i, j int) bool {
	return func(i, j int) bool {
		pi, ni := key(l[i])
		pj, nj := key(l[j])
		if pi != pj {
			return pi > pj
		}
		return ni < nj
	}
}

// LoadSettings returns the stored settings (pinning mode), or nil while
// they were never changed: every setting then has its default.
func LoadSettings(ctx context.Context, client *ent.Client) (*ent.Setting, error) {
	s, err := client.Setting.Query().Where(setting.Scope(settingsScope)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return s, nil
}

const settingsScope = "global"

// PinningMode returns the stored tool-definition pinning mode
// (config.PinningAuto, PinningApprove or PinningOff); auto when none is
// stored.
func PinningMode(ctx context.Context, client *ent.Client) (string, error) {
	s, err := LoadSettings(ctx, client)
	if err != nil || s == nil {
		return config.PinningAuto, err
	}
	return s.PinningMode.String(), nil
}

// SetPinningMode stores the tool-definition pinning mode, creating the
// settings row on first use. It reports whether the mode changed; setting
// the mode in force writes nothing.
func SetPinningMode(ctx context.Context, client *ent.Client, mode string) (changed bool, err error) {
	m := setting.PinningMode(mode)
	if err := setting.PinningModeValidator(m); err != nil {
		return false, fmt.Errorf("pinning mode: %w", err)
	}
	s, err := LoadSettings(ctx, client)
	switch {
	case err != nil:
		return false, err
	case s == nil && m == setting.DefaultPinningMode:
		return false, nil
	case s == nil:
		err = client.Setting.Create().SetScope(settingsScope).SetPinningMode(m).Exec(ctx)
	case s.PinningMode == m:
		return false, nil
	default:
		err = client.Setting.UpdateOne(s).SetPinningMode(m).Exec(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("set pinning mode: %w", err)
	}
	return true, nil
}

// checkAccessRefs loads the stored approval rules by name and checks the
// approval rules that the document's grants name: a rule of the document
// (config validation made sure of that when it lists any) or, when it
// lists none, of the store.
func (a *applier) checkAccessRefs(ctx context.Context, d *config.Document) (map[string]*ent.ApprovalRule, error) {
	rules, err := a.c.ApprovalRule.Query().All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load approval rules: %w", err)
	}
	byName := map[string]*ent.ApprovalRule{}
	for _, r := range rules {
		byName[r.Name] = r
	}
	listed := map[string]bool{}
	for _, r := range d.ApprovalRules {
		listed[r.Name] = true
	}
	var bad []*config.FieldError
	for i, g := range d.Grants {
		if g.Approval != "" && !listed[g.Approval] && byName[g.Approval] == nil {
			bad = append(bad, &config.FieldError{
				Path:   fmt.Sprintf("grants[%d].approval", i),
				Reason: fmt.Sprintf("unknown approval rule %q (list it under approval_rules)", g.Approval),
			})
		}
	}
	if len(bad) > 0 {
		return nil, &config.ValidationError{Fields: bad}
	}
	return byName, nil
}

// grantPlan matches the document's grants with the stored ones (see the
// comment at the top of this file).
type grantPlan struct {
	want    []config.Grant              // the document's, named, without duplicates
	matched map[int]*ent.Grant          // by index in want: the stored grant it updates, if any
	legacy  map[int]bool                // by index in want: matched an unnamed stored grant by content
	drop    []*ent.Grant                // stored grants the document lacks
	stored  map[*ent.Grant]config.Grant // document form of every stored grant
}

func (a *applier) planGrants(ctx context.Context, d *config.Document) (*grantPlan, error) {
	all, err := a.c.Grant.Query().WithVirtualServer().WithApprovalRule().Order(ent.Asc(grant.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load grants: %w", err)
	}
	p := &grantPlan{matched: map[int]*ent.Grant{}, legacy: map[int]bool{}, stored: map[*ent.Grant]config.Grant{}}
	byName := map[string]*ent.Grant{}
	var unnamed []*ent.Grant
	for _, g := range all {
		p.stored[g] = grantDoc(g)
		if g.Name != "" {
			byName[g.Name] = g
		} else {
			unnamed = append(unnamed, g)
		}
	}
	seen := map[string]bool{}
	used := map[*ent.Grant]bool{}
	for _, w := range d.Grants {
		derived := GrantName(w)
		if w.Name == "" {
			w.Name = derived
		}
		if seen[w.Name] {
			continue // an unnamed grant listed twice: one is enough
		}
		seen[w.Name] = true
		i := len(p.want)
		p.want = append(p.want, w)
		if g := byName[w.Name]; g != nil {
			p.matched[i], used[g] = g, true
			continue
		}
		if w.Name != derived {
			continue
		}
		for _, g := range unnamed {
			if !used[g] && sameGrant(p.stored[g], w) {
				p.matched[i], p.legacy[i], used[g] = g, true, true
				break
			}
		}
	}
	for _, g := range all {
		if !used[g] {
			p.drop = append(p.drop, g)
		}
	}
	sort.Slice(p.drop, func(i, j int) bool { return p.stored[p.drop[i]].Name < p.stored[p.drop[j]].Name })
	return p, nil
}

// sameGrant reports whether a and b decide the same (names and descriptions
// aside).
func sameGrant(a, b config.Grant) bool {
	for _, f := range grantDiff(a, b) {
		if f != "description" {
			return false
		}
	}
	return true
}

// grantDiff names the document keys whose values differ between a and b.
func grantDiff(a, b config.Grant) []string {
	var d diff
	d.add("description", a.Description != b.Description)
	d.add("subject", a.Subject != b.Subject)
	d.add("target", a.Target.VirtualServer != b.Target.VirtualServer || !equalGlobs(a.Target.Tools, b.Target.Tools) ||
		!equalGlobs(a.Target.Resources, b.Target.Resources) || !equalGlobs(a.Target.Prompts, b.Target.Prompts))
	d.add("effect", a.Effect != b.Effect)
	d.add("when", a.When != b.When)
	d.add("approval", a.Approval != b.Approval)
	return d
}

// equalGlobs compares glob lists where nil and empty differ.
func equalGlobs(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// pruneAccess deletes the grants, approval rules, guardrails and rate
// limits that d lacks, and removes the deleted rules from rules. A rule
// that a grant of d names stays.
func (a *applier) pruneAccess(ctx context.Context, d *config.Document, grants *grantPlan, rules map[string]*ent.ApprovalRule) error {
	for _, g := range grants.drop {
		if err := a.c.Grant.DeleteOne(g).Exec(ctx); err != nil {
			return fmt.Errorf("delete grant %q: %w", grants.stored[g].Name, err)
		}
		a.res.add("grant", grants.stored[g].Name, "deleted")
	}
	wantRule := map[string]bool{}
	for _, r := range d.ApprovalRules {
		wantRule[r.Name] = true
	}
	for _, g := range d.Grants {
		if g.Approval != "" {
			wantRule[g.Approval] = true
		}
	}
	for _, name := range sortedNames(rules) {
		if !wantRule[name] {
			if err := a.c.ApprovalRule.DeleteOne(rules[name]).Exec(ctx); err != nil {
				return fmt.Errorf("delete approval rule %q: %w", name, err)
			}
			delete(rules, name)
			a.res.add("approval_rule", name, "deleted")
		}
	}
	wantGuard := map[string]bool{}
	for _, g := range d.Guardrails {
		wantGuard[g.Name] = true
	}
	guards, err := a.c.GuardrailRule.Query().Order(ent.Asc(guardrailrule.FieldName)).All(ctx)
	if err != nil {
		return fmt.Errorf("load guardrails: %w", err)
	}
	for _, r := range guards {
		if !wantGuard[r.Name] {
			if err := a.c.GuardrailRule.DeleteOne(r).Exec(ctx); err != nil {
				return fmt.Errorf("delete guardrail %q: %w", r.Name, err)
			}
			a.res.add("guardrail", r.Name, "deleted")
		}
	}
	wantLimit := map[string]bool{}
	for _, l := range d.RateLimits {
		wantLimit[l.Name] = true
	}
	limits, err := a.c.RateLimit.Query().Order(ent.Asc(ratelimit.FieldName)).All(ctx)
	if err != nil {
		return fmt.Errorf("load rate limits: %w", err)
	}
	for _, l := range limits {
		if !wantLimit[l.Name] {
			if err := a.c.RateLimit.DeleteOne(l).Exec(ctx); err != nil {
				return fmt.Errorf("delete rate limit %q: %w", l.Name, err)
			}
			a.res.add("rate_limit", l.Name, "deleted")
		}
	}
	return nil
}

// access creates and updates d's approval rules (first, adding them to
// rules, so grants can name them), grants, guardrails and rate limits, and
// sets the pinning mode. vss holds every virtual server d names.
func (a *applier) access(ctx context.Context, d *config.Document, grants *grantPlan, rules map[string]*ent.ApprovalRule, vss map[string]*ent.VirtualServer) error {
	if err := a.approvalRules(ctx, d.ApprovalRules, rules); err != nil {
		return err
	}
	for i, w := range grants.want {
		g, ok := grants.matched[i]
		switch {
		case !ok:
			c := a.c.Grant.Create()
			setGrant(c.Mutation(), w, vss, rules)
			if err := c.Exec(ctx); err != nil {
				return fmt.Errorf("create grant %q: %w", w.Name, err)
			}
			a.res.add("grant", w.Name, "created")
		case grants.legacy[i]:
			// An unnamed grant of an earlier Gatehouse, equal in effect:
			// left as it is (a description differing is not worth a write).
		default:
			diff := grantDiff(grants.stored[g], w)
			if len(diff) == 0 {
				break
			}
			u := a.c.Grant.UpdateOne(g)
			setGrant(u.Mutation(), w, vss, rules)
			if err := u.Exec(ctx); err != nil {
				return fmt.Errorf("update grant %q: %w", w.Name, err)
			}
			a.res.add("grant", w.Name, "updated", diff...)
		}
	}
	if err := a.guardrails(ctx, d.Guardrails, vss); err != nil {
		return err
	}
	if err := a.rateLimits(ctx, d.RateLimits, vss); err != nil {
		return err
	}
	changed, err := SetPinningMode(ctx, a.c, d.Pinning.Mode)
	if err != nil {
		return err
	}
	if changed {
		a.res.add("settings", "pinning", "updated", "mode")
	}
	return nil
}

func setGrant(m *ent.GrantMutation, g config.Grant, vss map[string]*ent.VirtualServer, rules map[string]*ent.ApprovalRule) {
	kind, value := g.Subject.Kind()
	m.SetName(g.Name)
	m.SetDescription(g.Description)
	m.SetSubjectKind(grant.SubjectKind(kind))
	m.SetSubject(value)
	m.SetVirtualServerID(vss[g.Target.VirtualServer].ID)
	m.SetTools(g.Target.Tools)
	m.SetResources(g.Target.Resources)
	m.SetPrompts(g.Target.Prompts)
	m.SetEffect(grant.Effect(g.Effect))
	m.SetWhen(g.When)
	if r := rules[g.Approval]; r != nil {
		m.SetApprovalRuleID(r.ID)
	} else {
		m.ClearApprovalRule()
	}
}

// approvalRules creates and updates the rules of want; rules holds the
// stored ones by name and receives the new and updated ones.
func (a *applier) approvalRules(ctx context.Context, want []config.ApprovalRule, rules map[string]*ent.ApprovalRule) error {
	for _, w := range want {
		r, ok := rules[w.Name]
		if !ok {
			c := a.c.ApprovalRule.Create()
			setApprovalRule(c.Mutation(), w)
			r, err := c.Save(ctx)
			if err != nil {
				return fmt.Errorf("create approval rule %q: %w", w.Name, err)
			}
			rules[w.Name] = r
			a.res.add("approval_rule", w.Name, "created")
			continue
		}
		diff := approvalRuleDiff(approvalRuleDoc(r), w)
		if len(diff) == 0 {
			continue
		}
		u := a.c.ApprovalRule.UpdateOne(r)
		setApprovalRule(u.Mutation(), w)
		r, err := u.Save(ctx)
		if err != nil {
			return fmt.Errorf("update approval rule %q: %w", w.Name, err)
		}
		rules[w.Name] = r
		a.res.add("approval_rule", w.Name, "updated", diff...)
	}
	return nil
}

func setApprovalRule(m *ent.ApprovalRuleMutation, r config.ApprovalRule) {
	m.SetName(r.Name)
	m.SetDescription(r.Description)
	m.SetApproverGroups(r.ApproverGroups)
	m.SetQuorum(r.Quorum)
	m.SetAllowSameTeam(r.AllowSameTeam)
	m.SetTimeoutSeconds(seconds(r.Timeout))
	m.SetOnTimeout(approvalrule.OnTimeout(r.OnTimeout))
	if len(r.EscalateTo) > 0 {
		m.SetEscalateTo(r.EscalateTo)
	} else {
		m.ClearEscalateTo()
	}
	m.SetReuseWindowSeconds(seconds(r.ReuseWindow))
	m.SetVirtualServers(r.VirtualServers)
	m.SetTools(r.Tools)
	m.SetWhen(r.When)
}

// approvalRuleDiff names the document keys whose values differ between a
// and b, both with the document's defaults applied.
func approvalRuleDiff(a, b config.ApprovalRule) []string {
	x := config.Document{ApprovalRules: []config.ApprovalRule{a, b}}
	x.ApplyDefaults()
	a, b = x.ApprovalRules[0], x.ApprovalRules[1]
	var d diff
	d.add("description", a.Description != b.Description)
	d.add("approver_groups", !slices.Equal(a.ApproverGroups, b.ApproverGroups))
	d.add("quorum", a.Quorum != b.Quorum)
	d.add("allow_same_team", a.AllowSameTeam != b.AllowSameTeam)
	d.add("timeout", a.Timeout != b.Timeout)
	d.add("on_timeout", a.OnTimeout != b.OnTimeout)
	d.add("escalate_to", !slices.Equal(a.EscalateTo, b.EscalateTo))
	d.add("reuse_window", a.ReuseWindow != b.ReuseWindow)
	d.add("virtual_servers", !equalGlobs(a.VirtualServers, b.VirtualServers))
	d.add("tools", !equalGlobs(a.Tools, b.Tools))
	d.add("when", a.When != b.When)
	return d
}

func (a *applier) guardrails(ctx context.Context, want []config.Guardrail, vss map[string]*ent.VirtualServer) error {
	all, err := a.c.GuardrailRule.Query().WithVirtualServer().All(ctx)
	if err != nil {
		return fmt.Errorf("load guardrails: %w", err)
	}
	byName := map[string]*ent.GuardrailRule{}
	for _, r := range all {
		byName[r.Name] = r
	}
	for _, w := range want {
		r, ok := byName[w.Name]
		if !ok {
			c := a.c.GuardrailRule.Create()
			setGuardrail(c.Mutation(), w, vss)
			if err := c.Exec(ctx); err != nil {
				return fmt.Errorf("create guardrail %q: %w", w.Name, err)
			}
			a.res.add("guardrail", w.Name, "created")
			continue
		}
		diff := guardrailDiff(guardrailDoc(r), w)
		if len(diff) == 0 {
			continue
		}
		u := a.c.GuardrailRule.UpdateOne(r)
		setGuardrail(u.Mutation(), w, vss)
		if err := u.Exec(ctx); err != nil {
			return fmt.Errorf("update guardrail %q: %w", w.Name, err)
		}
		a.res.add("guardrail", w.Name, "updated", diff...)
	}
	return nil
}

func setGuardrail(m *ent.GuardrailRuleMutation, g config.Guardrail, vss map[string]*ent.VirtualServer) {
	m.SetName(g.Name)
	m.SetDirection(guardrailrule.Direction(g.Direction))
	m.SetDetector(guardrailrule.Detector(g.Detector))
	m.SetKinds(g.Kinds)
	m.SetPattern(g.Pattern)
	m.SetTerms(g.Terms)
	m.SetMaxBytes(g.MaxBytes)
	m.SetThreshold(g.Threshold)
	m.SetAction(guardrailrule.Action(g.Action))
	m.SetTools(g.Scope.Tools)
	m.SetEnabled(!g.Disabled)
	if vs := vss[g.Scope.VirtualServer]; vs != nil {
		m.SetVirtualServerID(vs.ID)
	} else {
		m.ClearVirtualServer()
	}
}

// guardrailDiff names the document keys whose values differ between a and
// b, both with the document's defaults applied.
func guardrailDiff(a, b config.Guardrail) []string {
	x := config.Document{Guardrails: []config.Guardrail{a, b}}
	x.ApplyDefaults()
	a, b = x.Guardrails[0], x.Guardrails[1]
	var d diff
	d.add("direction", a.Direction != b.Direction)
	d.add("scope", a.Scope.VirtualServer != b.Scope.VirtualServer || !equalGlobs(a.Scope.Tools, b.Scope.Tools))
	d.add("detector", a.Detector != b.Detector)
	d.add("kinds", !slices.Equal(a.Kinds, b.Kinds))
	d.add("pattern", a.Pattern != b.Pattern)
	d.add("terms", !slices.Equal(a.Terms, b.Terms))
	d.add("max_bytes", a.MaxBytes != b.MaxBytes)
	d.add("threshold", a.Threshold != b.Threshold)
	d.add("action", a.Action != b.Action)
	d.add("disabled", a.Disabled != b.Disabled)
	return d
}

func (a *applier) rateLimits(ctx context.Context, want []config.RateLimit, vss map[string]*ent.VirtualServer) error {
	all, err := a.c.RateLimit.Query().WithVirtualServer().All(ctx)
	if err != nil {
		return fmt.Errorf("load rate limits: %w", err)
	}
	byName := map[string]*ent.RateLimit{}
	for _, l := range all {
		byName[l.Name] = l
	}
	for _, w := range want {
		l, ok := byName[w.Name]
		if !ok {
			c := a.c.RateLimit.Create()
			setRateLimit(c.Mutation(), w, vss)
			if err := c.Exec(ctx); err != nil {
				return fmt.Errorf("create rate limit %q: %w", w.Name, err)
			}
			a.res.add("rate_limit", w.Name, "created")
			continue
		}
		diff := rateLimitDiff(rateLimitDoc(l), w)
		if len(diff) == 0 {
			continue
		}
		u := a.c.RateLimit.UpdateOne(l)
		setRateLimit(u.Mutation(), w, vss)
		if err := u.Exec(ctx); err != nil {
			return fmt.Errorf("update rate limit %q: %w", w.Name, err)
		}
		a.res.add("rate_limit", w.Name, "updated", diff...)
	}
	return nil
}

func setRateLimit(m *ent.RateLimitMutation, l config.RateLimit, vss map[string]*ent.VirtualServer) {
	m.SetName(l.Name)
	if kind, value := l.Subject.Kind(); kind != "" {
		m.SetSubjectKind(ratelimit.SubjectKind(kind))
		m.SetSubject(value)
	} else {
		m.ClearSubjectKind()
		m.ClearSubject()
	}
	m.SetTools(l.Scope.Tools)
	m.SetKey(ratelimit.Key(l.Key))
	m.SetRequests(l.Requests)
	m.SetPerSeconds(seconds(l.Per))
	m.SetBurst(l.Burst)
	if vs := vss[l.Scope.VirtualServer]; vs != nil {
		m.SetVirtualServerID(vs.ID)
	} else {
		m.ClearVirtualServer()
	}
}

// rateLimitDiff names the document keys whose values differ between a and
// b, both with the document's defaults applied.
func rateLimitDiff(a, b config.RateLimit) []string {
	x := config.Document{RateLimits: []config.RateLimit{a, b}}
	x.ApplyDefaults()
	a, b = x.RateLimits[0], x.RateLimits[1]
	var d diff
	d.add("subject", a.Subject != b.Subject)
	d.add("scope", a.Scope.VirtualServer != b.Scope.VirtualServer || !equalGlobs(a.Scope.Tools, b.Scope.Tools))
	d.add("key", a.Key != b.Key)
	d.add("requests", a.Requests != b.Requests)
	d.add("per", a.Per != b.Per)
	d.add("burst", a.Burst != b.Burst)
	return d
}
