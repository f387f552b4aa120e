package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMarshalRoundTrip checks that Parse reads back what Marshal writes,
// field for field, including the difference between an absent include list
// (all) and an empty one (none), and that zero values are left out.
func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	const src = `
listen: 0.0.0.0:9000
log: {level: debug, format: text}
http:
  allowed_hosts: [gatehouse.example:9000]
upstreams:
  - name: everything
    transport: streamable-http
    url: http://127.0.0.1:18080/mcp
    headers: {X-Team: platform}
    timeout: 90s
  - name: memory
    transport: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-memory"]
    env: {MEMORY_FILE_PATH: /tmp/memory.json}
    dir: /srv/memory
    disabled: true
virtual_servers:
  - name: ops
    description: "Operations: tools"
    anonymous: true
    include:
      - upstream: everything
        tools: [echo, "get_*", "*"]
        exclude_tools: []
        prompts: []
        rename: {echo: say}
        descriptions: {say: "Repeat a message."}
      - {upstream: memory, resources: ["file:///*"]}
agents:
  - name: ci-bot
    team: platform
    roles: [deployer, reader]
    labels: {env: prod}
    api_keys:
      - {sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
      - {env: CI_KEY, expires: 2027-01-01T00:00:00Z}
      - {file: /run/secrets/key}
grants:
  - name: qa-all
    description: "QA: everything on ops"
    subject: {team: platform}
    target: {virtual_server: ops, tools: ["*"], prompts: []}
    effect: allow
  - subject: {claim: 'claims.groups.exists(g, g == "sre")'}
    target: {virtual_server: ops, resources: ["file:///*"]}
    effect: require_approval
    when: 'args.path.startsWith("/tmp/")'
    approval: two-sre
  - {subject: {agent: "*"}, target: {virtual_server: ops, tools: [delete_*]}, effect: deny}
  - {subject: {role: deployer}, target: {virtual_server: ops, tools: [deploy_*]}, effect: require_approval}
guardrails:
  - {name: keys, detector: secrets, kinds: [aws_access_key], action: redact}
  - {name: inject, direction: response, detector: injection, threshold: 0.7, action: flag, scope: {virtual_server: ops, tools: []}}
  - {name: inject-default, detector: injection, action: block, disabled: true}
  - {name: words, direction: request, detector: denylist, terms: [DROP TABLE], action: block}
  - {name: big, detector: size, max_bytes: 65536, action: block, scope: {tools: ["upload_*"]}}
  - {name: iban, detector: regex, pattern: '[A-Z]{2}[0-9]{2}', action: require_approval}
rate_limits:
  - {name: per-agent, requests: 60, per: 1m}
  - {name: team-burst, subject: {team: platform}, key: team, requests: 10, per: 1s, burst: 20, scope: {virtual_server: ops}}
  - {name: global, key: global, requests: 1000, per: 1h, burst: 1000}
approval_rules:
  - name: two-sre
    description: "Two SREs, then the CTO"
    approver_groups: [sre]
    quorum: 2
    allow_same_team: true
    timeout: 30m
    on_timeout: escalate
    escalate_to: [cto, security]
    reuse_window: 10m
  - {name: prod-deploys, approver_groups: [release], tools: ["deploy_*"], when: 'args.env == "prod"'}
  - {name: nothing-by-itself, approver_groups: [sre], virtual_servers: []}
secret_bindings:
  - name: github-token
    description: "GitHub token of each agent"
    upstream: everything
    tools: ["create_*", search_code]
    source: kv
    path: "secret/agents/{{.agent}}/github"
    key: token
    version: 3
    injection: header
    target: Authorization
    template: "Bearer {{.Value}}"
    per_principal: true
  - {name: db, upstream: memory, tools: [], source: dynamic, path: database, role: readonly, lease_scope: session,
     injection: env, target: DATABASE_URL, template: "postgresql://{{.username}}:{{.password}}@db/app"}
  - {name: db-password, upstream: memory, source: dynamic, path: database, role: readonly, key: password, injection: argument, target: password}
pinning: {mode: approve}
`
	want, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(doc)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\ngot  %+v\nwant %+v\nYAML:\n%s", got, want, out)
	}
	if b := got.SecretBindings; b[0].LeaseScope != LeaseCall || b[0].Tools == nil || b[1].Tools == nil || len(b[1].Tools) != 0 || b[2].Tools != nil {
		t.Errorf("secret bindings: lease_scope default, tools [] and nil: %+v", b)
	}
	sel := got.VirtualServers[0].Include[0]
	if sel.ExcludeTools == nil || len(sel.ExcludeTools) != 0 || sel.Resources != nil {
		t.Errorf("exclude_tools %#v (want empty), resources %#v (want nil)", sel.ExcludeTools, sel.Resources)
	}

	// Only what is set appears.
	doc := &Document{Upstreams: []Upstream{{Name: "a", Transport: TransportStdio, Command: "x"}}}
	out, err = Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	const wantYAML = "upstreams:\n  - name: a\n    transport: stdio\n    command: x\n"
	if string(out) != wantYAML {
		t.Errorf("Marshal of a bare upstream:\n%s\nwant\n%s", out, wantYAML)
	}
	if out, _ := Marshal(new(Document)); strings.TrimSpace(string(out)) != "{}" {
		t.Errorf("Marshal of an empty document: %q", out)
	}

	// Defaults of the access sections are left out, once applied too.
	doc = &Document{
		VirtualServers: []VirtualServer{{Name: "ops", Include: []Selection{{Upstream: "a"}}}},
		Grants:         []Grant{{Subject: Subject{Team: "qa"}, Target: Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: EffectAllow}},
		Guardrails:     []Guardrail{{Name: "inj", Detector: DetectorInjection, Action: ActionFlag}},
		RateLimits:     []RateLimit{{Name: "rl", Requests: 5, Per: Duration(time.Minute)}},
		ApprovalRules:  []ApprovalRule{{Name: "ar", ApproverGroups: []string{"sre"}, Tools: []string{}}},
		SecretBindings: []SecretBinding{{Name: "sb", Upstream: "a", Source: SecretSourceKV, Path: "secret/a", Key: "k", Injection: InjectHeader, Target: "X-Key"}},
	}
	doc.ApplyDefaults()
	out, err = Marshal(&Document{VirtualServers: doc.VirtualServers, Grants: doc.Grants, Guardrails: doc.Guardrails, RateLimits: doc.RateLimits,
		ApprovalRules: doc.ApprovalRules, SecretBindings: doc.SecretBindings, Pinning: doc.Pinning})
	if err != nil {
		t.Fatal(err)
	}
	const wantAccess = `grants:
  - subject: {team: qa}
    target: {virtual_server: ops, tools: ['*']}
    effect: allow
guardrails:
  - name: inj
    detector: injection
    action: flag
rate_limits:
  - name: rl
    requests: 5
    per: 1m0s
approval_rules:
  - name: ar
    approver_groups: [sre]
    tools: []
secret_bindings:
  - name: sb
    upstream: a
    source: kv
    path: secret/a
    key: k
    injection: header
    target: X-Key
`
	if got := string(out); !strings.HasSuffix(got, wantAccess) {
		t.Errorf("Marshal of access defaults:\n%s\nwant it to end with\n%s", got, wantAccess)
	}
}
