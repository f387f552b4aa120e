package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/actor"
	"github.com/gatehouse-dev/gatehouse/ent/adminchange"
	"github.com/gatehouse-dev/gatehouse/ent/approvalrule"
	"github.com/gatehouse-dev/gatehouse/ent/grant"
	"github.com/gatehouse-dev/gatehouse/ent/tool"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/tooldef"
)

const accessYAML = `
upstreams:
  - {name: everything, transport: streamable-http, url: "http://127.0.0.1:18080/mcp"}
virtual_servers:
  - {name: ops, include: [{upstream: everything}]}
  - {name: dev, include: [{upstream: everything}]}
grants:
  - {name: b-named, subject: {role: deployer}, target: {virtual_server: ops, tools: [deploy]}, effect: require_approval, approval: two-sre}
  - {subject: {team: qa}, target: {virtual_server: ops, tools: ["*"], resources: []}, effect: allow, when: 'args.x == 1'}
  - {name: a-dev, description: dev denies, subject: {claim: 'claims.admin'}, target: {virtual_server: dev, prompts: ["p*"]}, effect: deny}
guardrails:
  - {name: keys, detector: secrets, kinds: [aws_access_key, jwt], action: redact, scope: {virtual_server: ops}}
  - {name: inj, direction: response, detector: injection, threshold: 0.8, action: flag}
  - {name: size, direction: request, detector: size, max_bytes: 1024, action: block, scope: {tools: []}}
  - {name: rx, detector: regex, pattern: 'x+', action: require_approval, disabled: true}
  - {name: deny, detector: denylist, terms: [a, b], action: block}
  - {name: pii, detector: pii, action: flag}
rate_limits:
  - {name: all, key: global, requests: 100, per: 1s}
  - {name: bots, subject: {agent: "*"}, requests: 5, per: 1500ms, burst: 2, scope: {virtual_server: dev, tools: [a, b]}}
pinning: {mode: off}
`

// TestApplyExportAccess applies a document with every access section and
// exports it back equal (lists in the store's order, unnamed grants named),
// checks that applying it again changes nothing, that the caller's
// document is left as it was, and that pruning lists what goes.
func TestApplyExportAccess(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		want, err := config.Parse([]byte(accessYAML))
		if err != nil {
			t.Fatal(err)
		}
		raw := *want
		raw.Guardrails = slices.Clone(want.Guardrails)
		raw.Guardrails[0].Direction = ""
		if _, err := ApplyDocument(ctx, c, &raw, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), `grants[0].approval: unknown approval rule "two-sre"`) {
			t.Fatalf("unknown approval rule: %v", err)
		}
		var ve *config.ValidationError
		if _, err := ApplyDocument(ctx, c, &raw, ApplyOptions{}); !errors.As(err, &ve) {
			t.Fatalf("not a validation error: %v", err)
		}
		c.ApprovalRule.Create().SetName("two-sre").SetApproverGroups([]string{"sre"}).ExecX(ctx)
		res, err := ApplyDocument(ctx, c, &raw, ApplyOptions{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changes) != 1+2+3+6+2+1 {
			t.Errorf("changes %v", res.Changes)
		}
		if raw.Guardrails[0].Direction != "" {
			t.Error("ApplyDocument changed the caller's document")
		}

		got, err := ExportDocument(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("export does not validate: %v", err)
		}
		want.Grants[1].Name = GrantName(want.Grants[1])
		slices.SortFunc(want.Grants, func(a, b config.Grant) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(want.Guardrails, func(a, b config.Guardrail) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(want.RateLimits, func(a, b config.RateLimit) int { return strings.Compare(a.Name, b.Name) })
		for _, s := range []struct {
			name      string
			got, want any
		}{
			{"grants", got.Grants, want.Grants},
			{"guardrails", got.Guardrails, want.Guardrails},
			{"rate limits", got.RateLimits, want.RateLimits},
			{"pinning", got.Pinning, want.Pinning},
		} {
			if !reflect.DeepEqual(s.got, s.want) {
				t.Errorf("%s:\ngot  %+v\nwant %+v", s.name, s.got, s.want)
			}
		}

		rev := revision(t, c)
		if res, err := ApplyDocument(ctx, c, got, ApplyOptions{Prune: true}); err != nil || len(res.Changes) != 0 || revision(t, c) != rev {
			t.Errorf("applying the export: %v %v", res, err)
		}
		if res, err := ApplyDocument(ctx, c, want, ApplyOptions{Prune: true}); err != nil || len(res.Changes) != 0 {
			t.Errorf("applying the document again: %v %v", res, err)
		}

		// Grants and guardrails go first, listed, also those whose virtual
		// server goes with them; rate limits changed in place.
		smaller := *want
		smaller.VirtualServers = want.VirtualServers[:1]
		smaller.Grants = want.Grants[1:2]
		smaller.Guardrails = want.Guardrails[1:]
		smaller.RateLimits = []config.RateLimit{want.RateLimits[0]}
		smaller.RateLimits[0].Requests = 7
		plan, err := ApplyDocument(ctx, c, &smaller, ApplyOptions{Prune: true, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, ch := range plan.Changes {
			lines = append(lines, ch.String())
		}
		wantPlan := []string{
			"grant a-dev deleted", "grant " + want.Grants[2].Name + " deleted", "guardrail deny deleted",
			"rate_limit bots deleted", "virtual_server dev deleted", "rate_limit all updated (requests)",
		}
		if strings.Join(lines, "\n") != strings.Join(wantPlan, "\n") {
			t.Errorf("prune plan:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(wantPlan, "\n"))
		}
	})
}

// TestExportReportsCELGuardrail checks that a guardrail rule with detector
// cel (which earlier versions stored, and the document cannot express) is
// exported so that validating the document reports it, rather than
// dropped.
func TestExportReportsCELGuardrail(t *testing.T) {
	t.Parallel()
	c := openTest(t)
	ctx := context.Background()
	if err := c.GuardrailRule.Create().SetName("old").SetDetector("cel").SetPattern("true").Exec(ctx); err == nil ||
		!strings.Contains(err.Error(), "cel is no longer supported") {
		t.Fatalf("creating a cel rule: %v", err)
	}
	r := c.GuardrailRule.Create().SetName("old").SetDetector("regex").SetPattern("x").SaveX(ctx)
	if _, err := c.ExecContext(ctx, "UPDATE guardrail_rules SET detector = 'cel' WHERE id = ?", r.ID); err != nil {
		t.Fatal(err)
	}
	doc, err := ExportDocument(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	var ve *config.ValidationError
	if err := doc.Validate(); !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Path != "guardrails[0].detector" || !strings.Contains(ve.Fields[0].Reason, `"cel"`) {
		t.Errorf("validating an export with a cel rule: %v", err)
	}
	// Admins can still change it into something the gateway evaluates.
	if err := c.GuardrailRule.UpdateOne(r).SetDetector("denylist").SetTerms([]string{"x"}).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.GuardrailRule.UpdateOne(r).SetEnabled(false).Exec(ctx); err != nil {
		t.Errorf("updating another field of a rule: %v", err)
	}
}

// TestRecordToolDefinitions checks how gateways' catalogs reach the store
// in each pinning mode: what changes the configuration (and the revision,
// and the change log) and what is bookkeeping.
func TestRecordToolDefinitions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		if _, err := ApplyDocument(ctx, c, readmeDoc(t), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
		record := func(upstream, mode string, defs ...tooldef.Definition) bool {
			t.Helper()
			now = now.Add(time.Second)
			changed, err := RecordToolDefinitions(ctx, c, upstream, defs, mode, now)
			if err != nil {
				t.Fatal(err)
			}
			return changed
		}
		get := func(upstream, name string) *ent.Tool {
			t.Helper()
			for _, tl := range c.Tool.Query().WithUpstream().AllX(ctx) {
				if tl.Name == name && tl.Edges.Upstream.Name == upstream {
					return tl
				}
			}
			t.Fatalf("no tool %s/%s", upstream, name)
			return nil
		}
		a := tooldef.Definition{Name: "a", Description: "A.", InputSchema: json.RawMessage(`{"type": "object"}`)}
		b := tooldef.Definition{Name: "b", Title: "B"}

		// off and approve record without approving.
		for _, tc := range []struct{ upstream, mode string }{{"memory", config.PinningOff}, {"legacy", config.PinningApprove}} {
			rev := revision(t, c)
			if !record(tc.upstream, tc.mode, a, a) || revision(t, c) == rev {
				t.Errorf("%s: a new tool is no change", tc.mode)
			}
			if tl := get(tc.upstream, "a"); PinStatusOf(tl) != PinPending || tl.ApprovedDefinition != nil {
				t.Errorf("%s: %+v", tc.mode, tl)
			}
			if record(tc.upstream, tc.mode, a) {
				t.Errorf("%s: recording again is a change", tc.mode)
			}
		}
		// auto approves what has no approval yet, in one logged change.
		rev := revision(t, c)
		if !record("legacy", config.PinningAuto, a, b) {
			t.Fatal("auto: no change")
		}
		hash, _ := a.Hash()
		tl := get("legacy", "a")
		if PinStatusOf(tl) != PinPinned || *tl.ApprovedHash != hash || *tl.ApprovedBy != ApprovedByAuto || !tl.ApprovedAt.Equal(now.Truncate(time.Microsecond)) ||
			tl.ApprovedDefinition.Description != "A." {
			t.Errorf("auto-approved %+v", tl)
		}
		log := c.AdminChange.Query().Where(adminchange.IDGT(int(rev))).AllX(ctx)
		if len(log) != 2 || log[0].Actor != "upstream:legacy" {
			t.Errorf("change log of the auto approval: %+v", log)
		}

		// Unchanged: last_seen only, as bookkeeping.
		rev = revision(t, c)
		before := get("legacy", "a")
		if record("legacy", config.PinningAuto, b, a) || revision(t, c) != rev {
			t.Error("unchanged catalog changed the configuration")
		}
		after := get("legacy", "a")
		if !after.LastSeen.After(before.LastSeen) || !after.UpdatedAt.Equal(before.UpdatedAt) || after.UpdatedBy != before.UpdatedBy {
			t.Errorf("bookkeeping: before %+v after %+v", before, after)
		}

		// A changed definition is recorded, not approved, even in auto.
		a2 := a
		a2.InputSchema = json.RawMessage(`{"type":"object","required":["x"]}`)
		if !record("legacy", config.PinningAuto, a2) {
			t.Fatal("changed definition: no change")
		}
		tl = get("legacy", "a")
		if PinStatusOf(tl) != PinQuarantined || !strings.Contains(DefinitionDiff(tl), `+   "required": [`) {
			t.Errorf("quarantined %+v diff %q", tl, DefinitionDiff(tl))
		}
		n := c.Tool.Query().Where(ToolsWithPinStatus(PinQuarantined)).CountX(ctx)
		if n != 1 {
			t.Errorf("%d quarantined tools, want 1", n)
		}
		// ... and approved against the hash the admin saw.
		if _, err := ApproveToolDefinition(ctx, c, tl.ID, hash, "token:x", now); !errors.Is(err, ErrDefinitionChanged) {
			t.Errorf("stale approval: %v", err)
		}
		if _, err := ApproveToolDefinition(ctx, c, 12345, hash, "token:x", now); !ent.IsNotFound(err) {
			t.Errorf("unknown tool: %v", err)
		}
		tl, err := ApproveToolDefinition(actor.NewContext(ctx, "token:x"), c, tl.ID, tl.DefinitionHash, "token:x", now)
		if err != nil || PinStatusOf(tl) != PinPinned || *tl.ApprovedBy != "token:x" || tl.UpdatedBy != "token:x" {
			t.Errorf("approved %+v %v", tl, err)
		}
		// Back to the first definition: quarantined again.
		record("legacy", config.PinningAuto, a)
		if tl := get("legacy", "a"); PinStatusOf(tl) != PinQuarantined {
			t.Errorf("reverted definition: %s", PinStatusOf(tl))
		}

		// In a caller's transaction, it joins it.
		tx, err := c.Tx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RecordToolDefinitions(ctx, tx.Client(), "everything", []tooldef.Definition{{Name: "z"}}, config.PinningAuto, now); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()
		if n := c.Tool.Query().Where(tool.Name("z")).CountX(ctx); n != 0 {
			t.Errorf("rolled back recording left %d rows", n)
		}
		if _, err := RecordToolDefinitions(ctx, c, "nowhere", nil, config.PinningAuto, now); !ent.IsNotFound(err) {
			t.Errorf("unknown upstream: %v", err)
		}
		doc, err := ExportDocument(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		var pins []string
		for _, p := range doc.Pins {
			pins = append(pins, p.Upstream+"/"+p.Tool+"="+p.Hash)
		}
		if want := []string{"legacy/a=" + tl.DefinitionHash, "legacy/b=" + *get("legacy", "b").ApprovedHash, "memory/a="}; !slices.Equal(pins, want) {
			t.Errorf("pins %q, want %q", pins, want)
		}
	})
}

const rulesYAML = `
upstreams:
  - {name: everything, transport: streamable-http, url: "http://127.0.0.1:18080/mcp"}
virtual_servers:
  - {name: ops, include: [{upstream: everything}]}
approval_rules:
  - name: two-sre
    description: Two SREs, then the CTO
    approver_groups: [sre]
    quorum: 2
    allow_same_team: true
    timeout: 30m
    on_timeout: escalate
    escalate_to: [cto]
    reuse_window: 90s
  - {name: prod-deploys, approver_groups: [release], virtual_servers: [ops], tools: ["deploy_*"], when: 'args.env == "prod"'}
  - {name: nothing, approver_groups: [sre], tools: []}
grants:
  - {name: deploys, subject: {role: deployer}, target: {virtual_server: ops, tools: [deploy]}, effect: require_approval, approval: two-sre}
  - {name: ops-all, subject: {team: ops}, target: {virtual_server: ops, tools: ["*"]}, effect: allow}
`

// TestApplyExportApprovalRules applies a document with approval rules
// (created before the grants that name them), exports it back equal,
// updates and prunes rules, and keeps the grants' approval edges right.
func TestApplyExportApprovalRules(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		want, err := config.Parse([]byte(rulesYAML))
		if err != nil {
			t.Fatal(err)
		}
		res, err := ApplyDocument(ctx, c, want, ApplyOptions{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, ch := range res.Changes {
			lines = append(lines, ch.String())
		}
		wantLines := []string{
			"upstream everything created", "virtual_server ops created",
			"approval_rule two-sre created", "approval_rule prod-deploys created", "approval_rule nothing created",
			"grant deploys created", "grant ops-all created",
		}
		if !slices.Equal(lines, wantLines) {
			t.Errorf("changes:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
		}
		stored := c.ApprovalRule.Query().Where(approvalrule.Name("prod-deploys")).OnlyX(ctx)
		if stored.TimeoutSeconds != 3600 || stored.OnTimeout != approvalrule.OnTimeoutDeny || stored.Quorum != 1 || stored.Tools == nil || stored.VirtualServers == nil {
			t.Errorf("stored rule %+v", stored)
		}
		if r := c.ApprovalRule.Query().Where(approvalrule.Name("two-sre")).OnlyX(ctx); r.TimeoutSeconds != 1800 || r.ReuseWindowSeconds != 90 || r.CreatedBy != "test" {
			t.Errorf("stored rule %+v", r)
		}
		if g := c.Grant.Query().Where(grant.Name("deploys")).WithApprovalRule().OnlyX(ctx); g.Edges.ApprovalRule == nil || g.Edges.ApprovalRule.Name != "two-sre" {
			t.Errorf("grant deploys has approval rule %+v", g.Edges.ApprovalRule)
		}

		got, err := ExportDocument(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(want.ApprovalRules, func(a, b config.ApprovalRule) int { return strings.Compare(a.Name, b.Name) })
		if !reflect.DeepEqual(got.ApprovalRules, want.ApprovalRules) {
			t.Errorf("approval rules:\ngot  %+v\nwant %+v", got.ApprovalRules, want.ApprovalRules)
		}
		if r := got.ApprovalRules[0]; r.Name != "nothing" || r.Tools == nil || r.VirtualServers != nil {
			t.Errorf("an empty tools list must stay empty, an absent one absent: %+v", r)
		}
		rev := revision(t, c)
		if res, err := ApplyDocument(ctx, c, got, ApplyOptions{Prune: true}); err != nil || len(res.Changes) != 0 || revision(t, c) != rev {
			t.Errorf("applying the export: %v %v", res, err)
		}

		// Changed in place; the grant moves to another rule; a rule the
		// document drops goes after the grants, unless a grant names it.
		next := *want
		next.ApprovalRules = slices.Clone(want.ApprovalRules[1:]) // prod-deploys, two-sre
		next.ApprovalRules[0].When = ""
		next.ApprovalRules[0].Quorum = 3
		next.ApprovalRules[1].Timeout = config.Duration(time.Hour)
		next.Grants = slices.Clone(want.Grants)
		next.Grants[0].Approval = "prod-deploys"
		res, err = ApplyDocument(ctx, c, &next, ApplyOptions{Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		lines = nil
		for _, ch := range res.Changes {
			lines = append(lines, ch.String())
		}
		wantLines = []string{
			"approval_rule nothing deleted",
			"approval_rule prod-deploys updated (quorum, when)",
			"approval_rule two-sre updated (timeout)",
			"grant deploys updated (approval)",
		}
		if !slices.Equal(lines, wantLines) {
			t.Errorf("changes:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
		}
		if g := c.Grant.Query().Where(grant.Name("deploys")).WithApprovalRule().OnlyX(ctx); g.Edges.ApprovalRule == nil || g.Edges.ApprovalRule.Name != "prod-deploys" {
			t.Errorf("grant deploys has approval rule %+v", g.Edges.ApprovalRule)
		}

		// A grant must name a rule of the document when it lists any.
		bad := next
		bad.ApprovalRules = next.ApprovalRules[1:]
		var ve *config.ValidationError
		if _, err := ApplyDocument(ctx, c, &bad, ApplyOptions{}); !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Path != "grants[0].approval" {
			t.Errorf("a grant naming a rule the document lacks: %v", err)
		}

		// A document that lists no rules may name rules of the store
		// (documents from before rules were part of it): pruning keeps
		// those and deletes the others.
		old := next
		old.ApprovalRules = nil
		res, err = ApplyDocument(ctx, c, &old, ApplyOptions{Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changes) != 1 || res.Changes[0].String() != "approval_rule two-sre deleted" {
			t.Errorf("pruning with a document without rules: %v", res.Changes)
		}
		old.Grants = slices.Clone(old.Grants)
		old.Grants[0].Approval = "gone"
		if _, err := ApplyDocument(ctx, c, &old, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), `grants[0].approval: unknown approval rule "gone"`) {
			t.Errorf("a grant naming a rule neither the document nor the store has: %v", err)
		}
	})
}
