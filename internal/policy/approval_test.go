package policy

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// ruleGrants allow team qa everything on ops and dev, deny deletes and one
// forbidden deploy, and require approval for release under rule by-grant.
var ruleGrants = []config.Grant{
	{Name: "qa-ops", Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}, Prompts: []string{"*"}}, Effect: "allow"},
	{Name: "qa-dev", Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "dev", Tools: []string{"*"}, Prompts: []string{"*"}, Resources: []string{"*"}}, Effect: "allow"},
	{Name: "no-delete", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"delete_*", "deploy_forbidden"}}, Effect: "deny"},
	{Name: "release", Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"release"}}, Effect: "require_approval", Approval: "by-grant"},
}

// ruleFixture lists rules out of name order; the first in name order
// decides.
var ruleFixture = []config.ApprovalRule{
	{Name: "z-deploy-all", ApproverGroups: []string{"release"}, Tools: []string{"deploy_*"}},
	{Name: "prod-deploys", ApproverGroups: []string{"sre"}, Tools: []string{"deploy_*"}, When: `args.env == "prod"`},
	{Name: "ops-writes", ApproverGroups: []string{"sre"}, VirtualServers: []string{"ops"}, Tools: []string{"write_*"}},
	{Name: "a-everything-dev", ApproverGroups: []string{"sre"}, VirtualServers: []string{"d?v"}},
	{Name: "by-grant", ApproverGroups: []string{"sre"}, Quorum: 2},
	{Name: "none", ApproverGroups: []string{"sre"}, VirtualServers: []string{}},
	{Name: "deleter", ApproverGroups: []string{"sre"}, Tools: []string{"delete_*", "deploy_forbidden"}},
	{Name: "staging", ApproverGroups: []string{"sre"}, VirtualServers: []string{"ops"}, Tools: []string{"restart"}, When: `principal.labels.?env.orValue("") == "staging"`},
}

func TestApprovalRulesDecide(t *testing.T) {
	t.Parallel()
	p, err := Compile(ruleGrants, ruleFixture...)
	if err != nil {
		t.Fatal(err)
	}
	staging := &identity.Principal{Agent: "s", Team: "qa", Method: "api_key", Labels: map[string]string{"env": "staging"}}
	tests := []struct {
		name     string
		req      Request
		effect   string
		approval string
		matched  []string
	}{
		{"rule with when holds", Request{Principal: alice, Name: "deploy_app", Args: map[string]any{"env": "prod"}},
			"require_approval", "prod-deploys", []string{"qa-ops", "approval_rule:prod-deploys"}},
		{"first rule in name order whose when holds", Request{Principal: alice, Name: "deploy_app", Args: map[string]any{"env": "dev"}},
			"require_approval", "z-deploy-all", []string{"qa-ops", "approval_rule:z-deploy-all"}},
		{"when fails closed", Request{Principal: alice, Name: "deploy_app", Args: map[string]any{}},
			"require_approval", "prod-deploys", []string{"qa-ops", "approval_rule:prod-deploys"}},
		{"virtual server and tool globs", Request{Principal: alice, Name: "write_file"},
			"require_approval", "ops-writes", []string{"qa-ops", "approval_rule:ops-writes"}},
		{"nil tools: every tool of the virtual server", Request{Principal: alice, VirtualServer: "dev", Name: "write_file"},
			"require_approval", "a-everything-dev", []string{"qa-dev", "approval_rule:a-everything-dev"}},
		{"no rule matches", Request{Principal: alice, Name: "read_file"}, "allow", "", []string{"qa-ops"}},
		{"tool glob on another virtual server", Request{Principal: alice, VirtualServer: "dev", Name: "deploy_app", Args: map[string]any{"env": "prod"}},
			"require_approval", "a-everything-dev", []string{"qa-dev", "approval_rule:a-everything-dev"}},
		{"when over principal", Request{Principal: staging, Name: "restart"}, "require_approval", "staging", []string{"qa-ops", "approval_rule:staging"}},
		{"when over principal false", Request{Principal: alice, Name: "restart"}, "allow", "", []string{"qa-ops"}},
		{"deny wins over a rule", Request{Principal: alice, Name: "delete_repo"}, "deny", "", []string{"qa-ops", "no-delete"}},
		{"a renamed tool keeps its rule", Request{Principal: alice, Name: "ship", UpstreamName: "deploy_app", Args: map[string]any{"env": "prod"}},
			"require_approval", "prod-deploys", []string{"qa-ops", "approval_rule:prod-deploys"}},
		{"a renamed tool keeps its deny grant", Request{Principal: alice, Name: "tidy", UpstreamName: "delete_repo"}, "deny", "", []string{"qa-ops", "no-delete"}},
		{"deny wins over a rule with a when", Request{Principal: alice, Name: "deploy_forbidden", Args: map[string]any{"env": "prod"}},
			"deny", "", []string{"qa-ops", "no-delete"}},
		{"require_approval grant keeps its rule", Request{Principal: alice, Name: "release"},
			"require_approval", "by-grant", []string{"qa-ops", "release"}},
		{"rules never allow", Request{Principal: bob, Name: "deploy_app", Args: map[string]any{"env": "prod"}}, "deny", "", nil},
		{"prompts are not held", Request{Principal: alice, VirtualServer: "dev", Kind: KindPrompt, Name: "summarize"}, "allow", "", []string{"qa-dev"}},
		{"resources are not held", Request{Principal: alice, VirtualServer: "dev", Kind: KindResource, Name: "file:///a"}, "allow", "", []string{"qa-dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.req
			if r.VirtualServer == "" {
				r.VirtualServer = "ops"
			}
			if r.Kind == "" {
				r.Kind = KindTool
			}
			d := p.Decide(&r)
			if d.Effect != tt.effect || d.Approval != tt.approval || !slices.Equal(matchedNames(d), tt.matched) {
				t.Errorf("Decide = %s (approval %q) matched %q; reason %q\nwant %s (approval %q) matched %q",
					d.Effect, d.Approval, matchedNames(d), d.Reason, tt.effect, tt.approval, tt.matched)
			}
			// Visible ignores rules: a call that may be approved is listed.
			if v := p.Visible(&r); v != (tt.effect != "deny") {
				t.Errorf("Visible = %v for a %s decision", v, tt.effect)
			}
		})
	}
}

func TestApprovalRuleReasons(t *testing.T) {
	t.Parallel()
	p, err := Compile(ruleGrants, ruleFixture...)
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(&Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "deploy_app", Args: map[string]any{"env": "prod"}})
	want := Match{Grant: "approval_rule:prod-deploys", Effect: "require_approval", Reason: `tools ["deploy_*"]; when true`}
	if got := d.Matched[len(d.Matched)-1]; got != want || got.ApprovalRule() != "prod-deploys" || d.Reason != "approval rule prod-deploys requires approval" {
		t.Errorf("match %+v, reason %q\nwant %+v", got, d.Reason, want)
	}
	if r := d.Matched[0].ApprovalRule(); r != "" {
		t.Errorf("a grant's match names approval rule %q", r)
	}
	d = p.Decide(&Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "deploy_app"})
	if r := d.Matched[len(d.Matched)-1].Reason; !strings.HasPrefix(r, `tools ["deploy_*"]; evaluation failed, the rule holds the call (fails closed): `) || !strings.Contains(r, "env") {
		t.Errorf("fail-closed reason %q", r)
	}
	d = p.Decide(&Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "write_x"})
	if r := d.Matched[len(d.Matched)-1].Reason; r != `virtual_servers ["ops"]; tools ["write_*"]` {
		t.Errorf("reason %q", r)
	}
}

func TestPolicyApprovalRule(t *testing.T) {
	t.Parallel()
	p, err := Compile(ruleGrants, ruleFixture...)
	if err != nil {
		t.Fatal(err)
	}
	// Defaults applied.
	want := config.ApprovalRule{Name: "by-grant", ApproverGroups: []string{"sre"}, Quorum: 2, Timeout: config.Duration(time.Hour), OnTimeout: "deny"}
	if got := p.ApprovalRule("by-grant"); !reflect.DeepEqual(got, want) {
		t.Errorf("ApprovalRule(by-grant) = %+v, want %+v", got, want)
	}
	for _, name := range []string{"", "unknown", "default"} {
		if got := p.ApprovalRule(name); !reflect.DeepEqual(got, config.DefaultApprovalRule) {
			t.Errorf("ApprovalRule(%q) = %+v, want the built-in default", name, got)
		}
	}
	var nilPolicy *Policy
	if got := nilPolicy.ApprovalRule("x"); !reflect.DeepEqual(got, config.DefaultApprovalRule) {
		t.Errorf("nil policy: %+v", got)
	}

	// A rule named default replaces the built-in one.
	own := config.ApprovalRule{Name: "default", ApproverGroups: []string{"oncall"}, Quorum: 1, Timeout: config.Duration(time.Minute), OnTimeout: "deny"}
	p, err = Compile(nil, own, ruleFixture[4])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "unknown", "default"} {
		if got := p.ApprovalRule(name); !reflect.DeepEqual(got, own) {
			t.Errorf("ApprovalRule(%q) = %+v, want the document's default", name, got)
		}
	}
	if got := p.ApprovalRule("by-grant"); got.Name != "by-grant" {
		t.Errorf("ApprovalRule(by-grant) = %+v", got)
	}
}

func TestCompileApprovalRuleErrors(t *testing.T) {
	t.Parallel()
	good := config.ApprovalRule{Name: "ok", ApproverGroups: []string{"sre"}, Tools: []string{"x"}, When: `args.a == 1`}
	tests := []struct {
		name string
		rule config.ApprovalRule
		path string
		want string
	}{
		{"undeclared variable", config.ApprovalRule{When: `argz.a == 1`}, "approval_rules[1].when", "1:1: undeclared reference to 'argz'"},
		{"unknown field", config.ApprovalRule{When: `tool.nam == "x"`, Tools: []string{"*"}}, "approval_rules[1].when", "tool has no field 'nam'"},
		{"when of a rule that holds nothing by itself", config.ApprovalRule{When: `nope`}, "approval_rules[1].when", "undeclared reference to 'nope'"},
		{"bad tool glob", config.ApprovalRule{Tools: []string{"[a"}}, "approval_rules[1].tools[0]", "bad pattern"},
		{"bad virtual server glob", config.ApprovalRule{VirtualServers: []string{""}}, "approval_rules[1].virtual_servers[0]", "bad pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.rule.Name, tt.rule.ApproverGroups = "bad", []string{"sre"}
			_, err := Compile(nil, good, tt.rule)
			var ve *config.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Path != tt.path || !strings.Contains(ve.Fields[0].Reason, tt.want) {
				t.Errorf("Compile error = %v\nwant one at %s containing %q", err, tt.path, tt.want)
			}
		})
	}
}
