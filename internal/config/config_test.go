package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	base := "upstreams:\n  - {name: a, transport: streamable-http, url: http://x/mcp}\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown top-level key", "listn: 1.2.3.4:5\n", `unknown key "listn"`},
		{"unknown nested key", "upstreams:\n  - {name: a, transport: stdio, command: x, argz: []}\n", `line 2: unknown key "argz"`},
		{"missing scheme", "upstreams:\n  - {name: a, transport: sse, url: 127.0.0.1:9/mcp}\n", "upstreams[0].url: missing scheme"},
		{"bad transport", "upstreams:\n  - {name: a, transport: websocket, url: http://x}\n", `upstreams[0].transport: must be streamable-http, sse or stdio, got "websocket"`},
		{"stdio without command", "upstreams:\n  - {name: a, transport: stdio}\n", "upstreams[0].command: required for transport stdio"},
		{"duplicate upstream", base + "  - {name: a, transport: sse, url: http://y}\n", `upstreams[1].name: duplicate name "a"`},
		{"unknown upstream in vs", base + "virtual_servers:\n  - {name: v, include: [{upstream: b}]}\n", `virtual_servers[0].include[0].upstream: unknown upstream "b"`},
		{"vs without include", base + "virtual_servers:\n  - {name: v}\n", "virtual_servers[0].include: select at least one upstream"},
		{"bad glob", base + "virtual_servers:\n  - {name: v, include: [{upstream: a, tools: ['[']}]}\n", "virtual_servers[0].include[0].tools[0]: bad glob"},
		{"rename collision", base + "  - {name: b, transport: sse, url: http://y}\nvirtual_servers:\n  - name: v\n    include:\n      - {upstream: a, rename: {echo: say}}\n      - {upstream: b, rename: {ping: say}}\n",
			`name collision: "say" is also exposed by upstream "a"`},
		{"rename of excluded tool", base + "virtual_servers:\n  - {name: v, include: [{upstream: a, exclude_tools: [echo], rename: {echo: say}}]}\n", "renames \"echo\", which is excluded"},
		{"key with two sources", "agents:\n  - {name: x, api_keys: [{env: A, file: /b}]}\n", "agents[0].api_keys[0]: give exactly one of sha256, env or file"},
		{"bad sha256", "agents:\n  - {name: x, api_keys: [{sha256: abc}]}\n", "agents[0].api_keys[0].sha256: want 64 hex digits"},
		{"bad duration", "limits: {session_timeout: forever}\n", `invalid duration "forever"`},
		{"bad listen", "listen: localhost\n", `listen: want host:port`},
		{"h2c over https", "upstreams:\n  - {name: a, transport: streamable-http, url: https://x/mcp, h2c: true}\n", "upstreams[0].h2c: applies only to http:// URLs"},
		{"h2c with an upper-case https scheme", "upstreams:\n  - {name: a, transport: streamable-http, url: HTTPS://x/mcp, h2c: true}\n", "upstreams[0].h2c: applies only to http:// URLs"},
		{"h2c on stdio", "upstreams:\n  - {name: a, transport: stdio, command: x, h2c: true}\n", "upstreams[0]: url, headers and h2c apply only to HTTP transports"},
		{"bad name", base + "virtual_servers:\n  - {name: 'a b', include: [{upstream: a}]}\n", `virtual_servers[0].name: "a b": use letters`},
		{"rule without approvers", "approval_rules:\n  - {name: r}\n", "approval_rules[0].approver_groups: give at least one"},
		{"rule with a bad group", "approval_rules:\n  - {name: r, approver_groups: ['s re']}\n", `approval_rules[0].approver_groups[0]: "s re"`},
		{"duplicate rule", "approval_rules:\n  - {name: r, approver_groups: [sre]}\n  - {name: r, approver_groups: [sre]}\n", `approval_rules[1].name: duplicate name "r"`},
		{"rule quorum", "approval_rules:\n  - {name: r, approver_groups: [sre], quorum: -1}\n", "approval_rules[0].quorum: must be at least 1"},
		{"rule timeout", "approval_rules:\n  - {name: r, approver_groups: [sre], timeout: -1s}\n", "approval_rules[0].timeout: must be a positive duration"},
		{"rule on_timeout", "approval_rules:\n  - {name: r, approver_groups: [sre], on_timeout: allow}\n", `approval_rules[0].on_timeout: must be deny or escalate, got "allow"`},
		{"escalate without target", "approval_rules:\n  - {name: r, approver_groups: [sre], on_timeout: escalate}\n", "approval_rules[0].escalate_to: required for on_timeout escalate"},
		{"rule reuse window", "approval_rules:\n  - {name: r, approver_groups: [sre], reuse_window: -1m}\n", "approval_rules[0].reuse_window: must not be negative"},
		{"rule glob", "approval_rules:\n  - {name: r, approver_groups: [sre], tools: ['[']}\n", `approval_rules[0].tools[0]: bad pattern "["`},
		{"rule virtual server glob", "approval_rules:\n  - {name: r, approver_groups: [sre], virtual_servers: ['']}\n", "approval_rules[0].virtual_servers[0]: empty pattern"},
		{"grant names an unlisted rule", base + "virtual_servers:\n  - {name: v, include: [{upstream: a}]}\n" +
			"approval_rules:\n  - {name: r, approver_groups: [sre]}\n" +
			"grants:\n  - {subject: {team: qa}, target: {virtual_server: v, tools: ['*']}, effect: require_approval, approval: two-sre}\n",
			`grants[0].approval: unknown approval rule "two-sre"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseDefaultsAndAllErrorsAtOnce(t *testing.T) {
	d, err := Parse([]byte("upstreams:\n  - {name: a, transport: streamable-http, url: http://x/mcp}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Listen != DefaultListen || d.Limits.MaxBodyBytes != DefaultMaxBodyBytes || d.Upstreams[0].Timeout.Std() != DefaultUpstreamTimeout {
		t.Errorf("defaults not applied: %+v", d)
	}
	_, err = Parse([]byte("upstreams:\n  - {name: a, transport: sse}\n  - {name: b, transport: stdio}\n"))
	ve, ok := err.(*ValidationError)
	if !ok || len(ve.Fields) != 2 {
		t.Fatalf("want both errors reported together, got %v", err)
	}
}

// TestApprovalRuleDefaults checks an approval rule's defaults, and that a
// document listing no rules may name rules the config store holds.
func TestApprovalRuleDefaults(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte(`
upstreams: [{name: a, transport: stdio, command: x}]
virtual_servers: [{name: v, include: [{upstream: a}]}]
approval_rules:
  - {name: prod, approver_groups: [sre], tools: ["deploy_*"], when: 'args.env == "prod"'}
  - {name: two, approver_groups: [sre, security], quorum: 2, timeout: 10m, on_timeout: escalate, escalate_to: [cto], reuse_window: 5m, virtual_servers: []}
grants:
  - {subject: {team: qa}, target: {virtual_server: v, tools: ["*"]}, effect: require_approval, approval: two}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []ApprovalRule{
		{Name: "prod", ApproverGroups: []string{"sre"}, Quorum: 1, Timeout: Duration(time.Hour), OnTimeout: OnTimeoutDeny,
			Tools: []string{"deploy_*"}, When: `args.env == "prod"`},
		{Name: "two", ApproverGroups: []string{"sre", "security"}, Quorum: 2, Timeout: Duration(10 * time.Minute), OnTimeout: OnTimeoutEscalate,
			EscalateTo: []string{"cto"}, ReuseWindow: Duration(5 * time.Minute), VirtualServers: []string{}},
	}
	if !reflect.DeepEqual(d.ApprovalRules, want) {
		t.Errorf("approval rules\n got %+v\nwant %+v", d.ApprovalRules, want)
	}
	if !d.ApprovalRules[0].HoldsCalls() || !d.ApprovalRules[1].HoldsCalls() || DefaultApprovalRule.HoldsCalls() {
		t.Error("HoldsCalls: want true for rules with tools or virtual_servers (even empty), false for the default rule")
	}
	// The default rule is itself a valid rule.
	def := &Document{ApprovalRules: []ApprovalRule{DefaultApprovalRule}}
	def.ApplyDefaults()
	if err := def.Validate(); err != nil || !reflect.DeepEqual(def.ApprovalRules[0], DefaultApprovalRule) {
		t.Errorf("DefaultApprovalRule: %v, %+v", err, def.ApprovalRules[0])
	}
	// No rules listed: the store checks the name.
	if _, err := Parse([]byte(`
upstreams: [{name: a, transport: stdio, command: x}]
virtual_servers: [{name: v, include: [{upstream: a}]}]
grants:
  - {subject: {team: qa}, target: {virtual_server: v, tools: ["*"]}, effect: require_approval, approval: stored-only}
`)); err != nil {
		t.Errorf("a grant naming a rule of the store, no rules listed: %v", err)
	}
}
