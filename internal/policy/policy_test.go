package policy

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // request.time.getHours("Europe/Berlin") on machines without zoneinfo

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// fixture is a grant set exercising every subject kind, effect and
// condition variable.
var fixture = []config.Grant{
	{Name: "qa-read", Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"read_*"}}, Effect: "allow"},
	{Name: "ci-all", Subject: config.Subject{Agent: "ci-bot"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: "allow"},
	{Name: "no-delete", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"delete_*"}}, Effect: "deny"},
	{Name: "deploy-approval", Subject: config.Subject{Role: "deployer"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"deploy"}}, Effect: "require_approval", Approval: "two-person"},
	{Name: "deploy-allow", Subject: config.Subject{Role: "deployer"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"deploy", "status"}}, Effect: "allow"},
	{Name: "sre", Subject: config.Subject{Claim: `claims.groups.exists(g, g == "sre")`}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: "allow"},
	{Name: "tmp-writes", Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"write_file"}}, Effect: "allow", When: `args.path.startsWith("/tmp/")`},
	{Name: "office-hours", Subject: config.Subject{Team: "dev"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"build"}}, Effect: "allow",
		When: `request.time.getHours("Europe/Berlin") >= 8 && request.time.getHours("Europe/Berlin") < 18`},
	{Name: "readonly", Subject: config.Subject{Role: "auditor"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: "allow", When: `tool.annotations.readOnlyHint`},
	{Name: "no-prod-secrets", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"get_secret"}}, Effect: "deny", When: `args.env == "prod"`},
	{Name: "anon-public", Subject: config.Subject{Agent: "anonymous"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"public_*"}}, Effect: "allow"},
	{Name: "github-tools", Subject: config.Subject{Team: "dev"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: "allow", When: `tool.upstream == "github"`},
	{Name: "qa-docs", Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "ops", Resources: []string{"file:///docs/*"}, Prompts: []string{"summarize"}}, Effect: "allow"},
	{Name: "no-contractors", Subject: config.Subject{Claim: `claims.?contractor.orValue(false) == true`}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: "deny"},
	{Name: "suspended", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"*"}}, Effect: "deny", When: `principal.labels.?suspended.orValue("") == "true"`},
	{Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "dev", Tools: []string{"*"}}, Effect: "allow"},
	{Name: "ci-internal", Subject: config.Subject{Agent: "ci-bot"}, Target: config.Target{VirtualServer: "ops", Tools: []string{"internal_*"}}, Effect: "deny", When: `request.source_ip.startsWith("203.0.113.")`},
}

var (
	alice   = &identity.Principal{Agent: "alice", Team: "qa", Method: "api_key"}
	bob     = &identity.Principal{Agent: "bob", Team: "dev", Roles: []string{"deployer"}, Method: "api_key"}
	ci      = &identity.Principal{Agent: "ci-bot", Method: "api_key"}
	carol   = &identity.Principal{Agent: "carol", Method: "oidc", Claims: map[string]any{"groups": []any{"sre", "ops"}}}
	dan     = &identity.Principal{Agent: "dan", Method: "oidc", Claims: map[string]any{"groups": []any{"sre"}, "contractor": true}}
	auditor = &identity.Principal{Agent: "audit", Roles: []string{"auditor"}, Method: "api_key"}
	frozen  = &identity.Principal{Agent: "frozen", Team: "qa", Method: "api_key", Labels: map[string]string{"suspended": "true"}}
	anon    = identity.Anonymous
)

func mustCompile(t testing.TB, grants []config.Grant) *Policy {
	t.Helper()
	p, err := Compile(grants)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func matchedNames(d Decision) []string {
	var names []string
	for _, m := range d.Matched {
		names = append(names, m.Grant)
	}
	return names
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, fixture)
	noon := time.Date(2025, 3, 4, 11, 0, 0, 0, time.UTC)    // 12:00 in Berlin
	evening := time.Date(2025, 3, 4, 19, 0, 0, 0, time.UTC) // 20:00 in Berlin
	tests := []struct {
		name     string
		req      Request
		effect   string
		approval string
		matched  []string
	}{
		{"team glob allows", Request{Principal: alice, Name: "read_file"}, "allow", "", []string{"qa-read"}},
		{"team glob does not cover other tools", Request{Principal: alice, Name: "write_db"}, "deny", "", nil},
		{"an allow grant matches the exposed name only: a rename grants nothing", Request{Principal: alice, Name: "fetch", UpstreamName: "read_file"}, "deny", "", nil},
		{"a deny grant matches a renamed tool's upstream name", Request{Principal: ci, Name: "tidy", UpstreamName: "delete_repo"}, "deny", "", []string{"ci-all", "no-delete"}},
		{"no grant denies", Request{Principal: bob, Name: "read_file"}, "deny", "", nil},
		{"agent subject", Request{Principal: ci, Name: "anything"}, "allow", "", []string{"ci-all"}},
		{"deny wins over allow", Request{Principal: ci, Name: "delete_repo"}, "deny", "", []string{"ci-all", "no-delete"}},
		{"agent * denies every authenticated agent", Request{Principal: alice, Name: "delete_repo"}, "deny", "", []string{"no-delete"}},
		{"require_approval outranks allow", Request{Principal: bob, Name: "deploy"}, "require_approval", "two-person", []string{"deploy-approval", "deploy-allow"}},
		{"role allows", Request{Principal: bob, Name: "status"}, "allow", "", []string{"deploy-allow"}},
		{"claim subject", Request{Principal: carol, Name: "restart"}, "allow", "", []string{"sre"}},
		{"claim deny wins", Request{Principal: dan, Name: "restart"}, "deny", "", []string{"sre", "no-contractors"}},
		{"claim subject never matches API keys", Request{Principal: alice, Name: "restart"}, "deny", "", nil},
		{"when over args true", Request{Principal: alice, Name: "write_file", Args: map[string]any{"path": "/tmp/x"}}, "allow", "", []string{"tmp-writes"}},
		{"when over args false", Request{Principal: alice, Name: "write_file", Args: map[string]any{"path": "/etc/passwd"}}, "deny", "", nil},
		{"when error does not allow", Request{Principal: alice, Name: "write_file", Args: map[string]any{}}, "deny", "", nil},
		{"when wrong arg type does not allow", Request{Principal: alice, Name: "write_file", Args: map[string]any{"path": 42.0}}, "deny", "", nil},
		{"when over time inside", Request{Principal: bob, Name: "build", Time: noon}, "allow", "", []string{"office-hours"}},
		{"when over time outside", Request{Principal: bob, Name: "build", Time: evening}, "deny", "", nil},
		{"when over annotations", Request{Principal: auditor, Name: "list_pods", Annotations: map[string]any{"readOnlyHint": true}}, "allow", "", []string{"readonly"}},
		{"annotation default", Request{Principal: auditor, Name: "list_pods"}, "deny", "", nil},
		{"malformed hint keeps default", Request{Principal: auditor, Name: "list_pods", Annotations: map[string]any{"readOnlyHint": "yes"}}, "deny", "", nil},
		{"when over upstream", Request{Principal: bob, Name: "create_issue", Upstream: "github"}, "allow", "", []string{"github-tools"}},
		{"when over upstream false", Request{Principal: bob, Name: "create_issue", Upstream: "jira"}, "deny", "", nil},
		{"deny with when true", Request{Principal: ci, Name: "get_secret", Args: map[string]any{"env": "prod"}}, "deny", "", []string{"ci-all", "no-prod-secrets"}},
		{"deny with when false", Request{Principal: ci, Name: "get_secret", Args: map[string]any{"env": "dev"}}, "allow", "", []string{"ci-all"}},
		{"deny fails closed on missing arg", Request{Principal: ci, Name: "get_secret", Args: map[string]any{}}, "deny", "", []string{"ci-all", "no-prod-secrets"}},
		{"deny fails closed on nil args", Request{Principal: ci, Name: "get_secret"}, "deny", "", []string{"ci-all", "no-prod-secrets"}},
		{"deny over principal labels", Request{Principal: frozen, Name: "read_file"}, "deny", "", []string{"qa-read", "suspended"}},
		{"deny over source ip", Request{Principal: ci, Name: "internal_api", SourceIP: "203.0.113.9"}, "deny", "", []string{"ci-all", "ci-internal"}},
		{"deny over source ip not met", Request{Principal: ci, Name: "internal_api", SourceIP: "10.0.0.1"}, "allow", "", []string{"ci-all"}},
		{"anonymous matched by agent anonymous", Request{Principal: anon, Name: "public_status"}, "allow", "", []string{"anon-public"}},
		{"nil principal is anonymous", Request{Name: "public_status"}, "allow", "", []string{"anon-public"}},
		{"anonymous not matched by agent *", Request{Principal: anon, Name: "delete_x"}, "deny", "", nil},
		{"anonymous outside its grant", Request{Principal: anon, Name: "read_file"}, "deny", "", nil},
		{"authenticated agent is not anonymous", Request{Principal: alice, Name: "public_status"}, "deny", "", nil},
		{"agent named anonymous with a key is not anonymous", Request{Principal: &identity.Principal{Agent: "anonymous", Method: "api_key"}, Name: "public_status"}, "deny", "", nil},
		{"case-sensitive names", Request{Principal: alice, Name: "Read_File"}, "deny", "", nil},
		{"case-sensitive prefix", Request{Principal: alice, Name: "READ_file"}, "deny", "", nil},
		{"Cyrillic look-alike", Request{Principal: alice, Name: "r\u0435ad_file"}, "deny", "", nil},
		{"Cyrillic look-alike of exact name", Request{Principal: bob, Name: "d\u0435ploy"}, "deny", "", nil},
		{"glob does not cross slash", Request{Principal: alice, Name: "read_x/y"}, "deny", "", nil},
		{"resources glob", Request{Principal: alice, Kind: KindResource, Name: "file:///docs/a.md"}, "allow", "", []string{"qa-docs"}},
		{"resources glob not nested", Request{Principal: alice, Kind: KindResource, Name: "file:///docs/sub/a.md"}, "deny", "", nil},
		{"tool grant does not cover resources", Request{Principal: ci, Kind: KindResource, Name: "file:///docs/a.md"}, "deny", "", nil},
		{"prompts", Request{Principal: alice, Kind: KindPrompt, Name: "summarize"}, "allow", "", []string{"qa-docs"}},
		{"unnamed grant", Request{Principal: alice, VirtualServer: "dev", Name: "anything"}, "allow", "", []string{"grants[15]"}},
		{"virtual servers are separate", Request{Principal: ci, VirtualServer: "dev", Name: "anything"}, "deny", "", nil},
		{"unknown virtual server", Request{Principal: ci, VirtualServer: "nope", Name: "anything"}, "deny", "", nil},
		{"unknown kind", Request{Principal: ci, Kind: "sampling", Name: "anything"}, "deny", "", nil},
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
			if d.Reason == "" {
				t.Error("empty reason")
			}
		})
	}
}

func TestDecideReasons(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, fixture)

	d := p.Decide(&Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "write_file", Args: map[string]any{"path": "/tmp/a"}})
	if want := `subject team qa; target tools ["write_file"]; when true`; d.Matched[0].Reason != want {
		t.Errorf("match reason = %q, want %q", d.Matched[0].Reason, want)
	}
	if want := "allowed by grant tmp-writes"; d.Reason != want {
		t.Errorf("reason = %q, want %q", d.Reason, want)
	}

	d = p.Decide(&Request{Principal: ci, VirtualServer: "ops", Kind: KindTool, Name: "get_secret"})
	if r := d.Matched[1].Reason; !strings.Contains(r, "fails closed") || !strings.Contains(r, "no such key: env") {
		t.Errorf("fail-closed reason = %q", r)
	}
	if d.Reason != "denied by grant no-prod-secrets" {
		t.Errorf("reason = %q", d.Reason)
	}

	d = p.Decide(&Request{Principal: bob, VirtualServer: "ops", Kind: KindTool, Name: "read_file"})
	if want := `no grant allows tool "read_file" on virtual server "ops" for agent "bob"`; d.Reason != want {
		t.Errorf("reason = %q, want %q", d.Reason, want)
	}
}

// TestDecideUnmet: asked to explain, a decision also lists the grants
// whose subject and target match but whose condition did not hold.
func TestDecideUnmet(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, fixture)
	r := &Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "write_file", Args: map[string]any{"path": "/etc/passwd"}}
	if d := p.Decide(r); d.Effect != "deny" || d.Unmet != nil {
		t.Fatalf("without Explain: %s, unmet %v", d.Effect, d.Unmet)
	}
	r.Explain = true
	d := p.Decide(r)
	want := []Match{
		{Grant: "tmp-writes", Effect: "allow", Reason: `subject team qa; target tools ["write_file"]; when false, so the grant does not apply`},
		{Grant: "suspended", Effect: "deny", Reason: `subject agent *; target tools ["*"]; when false, so the grant does not apply`},
	}
	if d.Effect != "deny" || !slices.Equal(d.Unmet, want) {
		t.Errorf("unmet = %+v, want %+v", d.Unmet, want)
	}
	eve := &identity.Principal{Agent: "eve", Method: "oidc", Claims: map[string]any{"groups": []any{"ops"}}}
	d = p.Decide(&Request{Principal: eve, VirtualServer: "ops", Kind: KindTool, Name: "build", Explain: true})
	if !slices.ContainsFunc(d.Unmet, func(m Match) bool {
		return m.Grant == "sre" && strings.HasSuffix(m.Reason, "subject claim false, so the grant does not apply")
	}) {
		t.Errorf("unmet = %+v, want sre's claim", d.Unmet)
	}
}

func TestDecideClaimFailsClosed(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, []config.Grant{
		{Name: "all", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "v", Tools: []string{"*"}}, Effect: "allow"},
		{Name: "no-contractors", Subject: config.Subject{Claim: `claims.department == "contractors"`}, Target: config.Target{VirtualServer: "v", Tools: []string{"*"}}, Effect: "deny"},
		{Name: "eng", Subject: config.Subject{Claim: `claims.department == "eng"`}, Target: config.Target{VirtualServer: "v", Tools: []string{"x"}}, Effect: "require_approval"},
	})
	tests := []struct {
		name   string
		claims map[string]any
		effect string
	}{
		{"claim present, deny does not apply", map[string]any{"department": "eng"}, "require_approval"},
		{"claim present, deny applies", map[string]any{"department": "contractors"}, "deny"},
		{"claim missing: deny fails closed", map[string]any{"sub": "x"}, "deny"},
		{"no claims at all: claim subjects do not apply", nil, "allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pr := &identity.Principal{Agent: "a", Method: "oidc", Claims: tt.claims}
			if d := p.Decide(&Request{Principal: pr, VirtualServer: "v", Kind: KindTool, Name: "x"}); d.Effect != tt.effect {
				t.Errorf("Decide = %s (%s), want %s", d.Effect, d.Reason, tt.effect)
			}
		})
	}
}

func TestCostLimitFailsClosed(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, []config.Grant{
		{Name: "allow-small", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "v", Tools: []string{"a"}}, Effect: "allow",
			When: `args.items.all(x, args.items.all(y, x != y || x == y))`},
		{Name: "deny-heavy", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "v", Tools: []string{"b"}}, Effect: "deny",
			When: `args.items.exists(x, args.items.exists(y, x == "never" && y == "never"))`},
		{Name: "allow-b", Subject: config.Subject{Agent: "*"}, Target: config.Target{VirtualServer: "v", Tools: []string{"b"}}, Effect: "allow"},
	})
	items := make([]any, 5000) // 25M comparisons, far over the limit
	for i := range items {
		items[i] = "x"
	}
	small := []any{"a", "b"}
	for _, tc := range []struct {
		tool   string
		items  []any
		effect string
	}{
		{"a", small, "allow"},
		{"a", items, "deny"},
		{"b", small, "allow"},
		{"b", items, "deny"},
	} {
		start := time.Now()
		d := p.Decide(&Request{Principal: alice, VirtualServer: "v", Kind: KindTool, Name: tc.tool, Args: map[string]any{"items": tc.items}})
		if d.Effect != tc.effect {
			t.Errorf("%s with %d items: %s (%s), want %s", tc.tool, len(tc.items), d.Effect, d.Reason, tc.effect)
		}
		// Unbounded, these evaluations take tens of seconds.
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("%s with %d items took %v; cost limit not enforced", tc.tool, len(tc.items), el)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	base := func(g config.Grant) config.Grant {
		if g.Subject == (config.Subject{}) {
			g.Subject.Team = "qa"
		}
		g.Target.VirtualServer = "v"
		if g.Target.Tools == nil {
			g.Target.Tools = []string{"*"}
		}
		if g.Effect == "" {
			g.Effect = "allow"
		}
		return g
	}
	tests := []struct {
		name  string
		grant config.Grant
		path  string
		want  string
	}{
		{"undeclared variable", config.Grant{When: `args.x == 1 && argz.y`}, "grants[1].when", "1:16: undeclared reference to 'argz'"},
		{"syntax error", config.Grant{When: `args.x ==`}, "grants[1].when", "1:10: Syntax error"},
		{"second line", config.Grant{When: "args.x == 1 &&\n  nope"}, "grants[1].when", "2:3: undeclared reference to 'nope'"},
		{"not bool", config.Grant{When: `"yes"`}, "grants[1].when", "must be a bool expression, got string"},
		{"unknown principal field", config.Grant{When: `principal.tem == "qa"`}, "grants[1].when", "1:10: principal has no field 'tem'"},
		{"unknown request field", config.Grant{When: `has(request.tiem)`}, "grants[1].when", "request has no field 'tiem'"},
		{"unknown tool field via optional", config.Grant{When: `tool.?nam.orValue("") == "x"`}, "grants[1].when", "tool has no field 'nam'"},
		{"args not in claim", config.Grant{Subject: config.Subject{Claim: `args.x == 1`}}, "grants[1].subject.claim", "undeclared reference to 'args'"},
		{"claim syntax", config.Grant{Subject: config.Subject{Claim: `claims.groups.exists(g, )`}}, "grants[1].subject.claim", "1:"},
		{"bad glob", config.Grant{Target: config.Target{Tools: []string{"[a"}}}, "grants[1].target.tools[0]", "bad pattern"},
		{"bad effect", config.Grant{Effect: "maybe"}, "grants[1].effect", "must be allow"},
		{"two subjects", config.Grant{Subject: config.Subject{Team: "qa", Role: "x"}}, "grants[1].subject", "exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			good := base(config.Grant{When: `args.path.startsWith("/tmp/")`})
			_, err := Compile([]config.Grant{good, base(tt.grant)})
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Compile error = %v, want *config.ValidationError", err)
			}
			if len(ve.Fields) != 1 || ve.Fields[0].Path != tt.path || !strings.Contains(ve.Fields[0].Reason, tt.want) {
				t.Errorf("Compile error = %v\nwant one at %s containing %q", err, tt.path, tt.want)
			}
		})
	}
}

func TestCompileReportsEveryError(t *testing.T) {
	t.Parallel()
	g := config.Grant{Subject: config.Subject{Team: "qa"}, Target: config.Target{VirtualServer: "v", Tools: []string{"*"}}, Effect: "allow"}
	bad1, bad2 := g, g
	bad1.When = "nope"
	bad2.Subject = config.Subject{Claim: "nada"}
	_, err := Compile([]config.Grant{g, bad1, g, bad2})
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 2 || ve.Fields[0].Path != "grants[1].when" || ve.Fields[1].Path != "grants[3].subject.claim" {
		t.Fatalf("Compile error = %v", err)
	}
}

func TestCheckExpression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, expr string
		wantErr    string // "" = valid
	}{
		{ExprWhen, `args.path.startsWith("/tmp/")`, ""},
		{ExprWhen, `args.path.lowerAscii().contains("secret")`, ""},
		{ExprWhen, `principal.roles.exists(r, r in ["a", "b"])`, ""},
		{ExprWhen, `sets.contains(args.a, args.b)`, "undeclared reference"}, // quadratic: left out
		{ExprWhen, `request.time.getHours("Europe/Berlin") < 18`, ""},
		{ExprWhen, `cidr("10.0.0.0/8").containsIP(request.source_ip)`, ""},
		{ExprWhen, `args.?n.orValue(0) > 3`, ""},
		{ExprWhen, `cel.bind(p, principal.agent, p == "x")`, ""},
		{ExprWhen, `[{"foo": 1}].exists(principal, principal.foo == 1)`, ""}, // shadowed: not our principal
		{ExprWhen, `args.path.matches("^/tmp/[a-z]+$")`, ""},
		{ExprWhen, `argz.path == ""`, "1:1: undeclared reference to 'argz'"},
		{ExprWhen, `args.path ==`, "1:13: Syntax error"},
		{ExprWhen, ``, "empty expression"},
		{ExprWhen, strings.Repeat("a", MaxExpressionLen+1), "longer than"},
		{ExprClaim, `claims.groups.exists(g, g == "sre")`, ""},
		{ExprClaim, `principal.team == "qa"`, ""},
		{ExprClaim, `tool.name == "x"`, "undeclared reference to 'tool'"},
		{ExprClaim, `"x"`, "must be a bool expression"},
		{"where", `true`, "unknown expression kind"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+" "+tt.expr, func(t *testing.T) {
			t.Parallel()
			err := CheckExpression(tt.kind, tt.expr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckExpression: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckExpression error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCELEnvironment checks what conditions can read and use.
func TestCELEnvironment(t *testing.T) {
	t.Parallel()
	pr := &identity.Principal{Agent: "alice", Team: "qa", Roles: []string{"dev", "ops"}, Labels: map[string]string{"env": "staging"},
		Method: "oidc", Claims: map[string]any{"groups": []any{"sre"}, "level": 3.0}}
	r := &Request{
		Principal: pr, VirtualServer: "ops", Kind: KindTool, Name: "fs_write", Upstream: "fs",
		Annotations: map[string]any{"readOnlyHint": false, "title": "Write"},
		Args:        map[string]any{"path": "/tmp/a", "count": 3.0, "tags": []any{"a", "b"}, "opts": map[string]any{"force": true}},
		Time:        time.Date(2025, 7, 1, 6, 30, 0, 0, time.UTC), // 08:30 in Berlin (CEST)
		SourceIP:    "10.1.2.3",
	}
	for _, expr := range []string{
		`principal.agent == "alice" && principal.team == "qa" && principal.method == "oidc"`,
		`"ops" in principal.roles && principal.labels.env == "staging"`,
		`principal.claims.groups == claims.groups && claims.level >= 3`,
		`tool.name == "fs_write" && tool.upstream == "fs" && tool.kind == "tool"`,
		`tool.annotations.title == "Write" && tool.annotations.destructiveHint && !tool.annotations.readOnlyHint`,
		`args.path.startsWith("/tmp/") && args.count == 3 && args.count > 2 && args.tags.size() == 2 && args.opts.force`,
		`args.tags.exists(t, t in ["b", "c"])`,
		`args.path.split("/").size() == 3 && args.path.lastIndexOf("/") == 4`,
		`request.virtual_server == "ops" && request.source_ip == "10.1.2.3"`,
		`request.time.getHours("Europe/Berlin") == 8 && request.time.getMinutes() == 30`,
		`request.time > timestamp("2025-01-01T00:00:00Z")`,
		`cidr("10.0.0.0/8").containsIP(request.source_ip)`,
		`!has(args.missing) && args.?missing.orValue("d") == "d"`,
		`math.greatest([1, 5, 3]) == 5`,
		`args.?recipients.orValue([]).all(r, r.endsWith("@example.com"))`,
		`!("prod" in principal.roles) || tool.annotations.readOnlyHint`,
		// The map variables behave as maps.
		`principal.size() == 6 && "agent" in principal && !("nope" in principal) && has(principal.team)`,
		`principal.exists(k, k == "labels") && principal.all(k, k != "")`,
		`principal == principal && principal.labels == {"env": "staging"} && principal != {"agent": "alice"}`,
		`tool.annotations.size() == 5 && tool.annotations.exists(k, k == "title") && "openWorldHint" in tool.annotations`,
		`tool.annotations.filter(k, k.endsWith("Hint")).size() == 4`,
		`request.size() == 3 && request.exists(k, k == "source_ip")`,
		`dyn(principal).agent == "alice" && principal["team"] == "qa" && principal.?team.hasValue()`,
		`!principal[?"nope"].hasValue()`,
		`principal.roles.size() == 2 && principal.roles[1] == "ops"`,
		`{"a": principal}.a.agent == "alice"`,
	} {
		prg, err := compileExpr(ExprWhen, expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		act := getActivation(r, pr)
		ok, err := prg.eval(act)
		putActivation(act)
		if err != nil || !ok {
			t.Errorf("%s = %v, %v; want true", expr, ok, err)
		}
	}
}

func TestVisible(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, fixture)
	tests := []struct {
		name      string
		principal *identity.Principal
		kind      Kind
		tool      string
		upstream  string
		ann       map[string]any
		vs        string
		want      bool
	}{
		{"allowed", alice, KindTool, "read_file", "", nil, "", true},
		{"not granted", alice, KindTool, "write_db", "", nil, "", false},
		{"when over args may hold", alice, KindTool, "write_file", "", nil, "", true},
		{"when over time may hold", bob, KindTool, "build", "", nil, "", true},
		{"static when over upstream holds", bob, KindTool, "create_issue", "github", nil, "", true},
		{"static when over upstream fails", bob, KindTool, "create_issue", "jira", nil, "", false},
		{"static when over annotations holds", auditor, KindTool, "list", "", map[string]any{"readOnlyHint": true}, "", true},
		{"static when over annotations fails", auditor, KindTool, "list", "", nil, "", false},
		{"unconditional deny hides", ci, KindTool, "delete_repo", "", nil, "", false},
		{"deny with args when does not hide", ci, KindTool, "get_secret", "", nil, "", true},
		{"deny with static when hides", frozen, KindTool, "read_file", "", nil, "", false},
		{"deny with source ip when does not hide", ci, KindTool, "internal_api", "", nil, "", true},
		{"claim deny hides", dan, KindTool, "restart", "", nil, "", false},
		{"claim allow shows", carol, KindTool, "restart", "", nil, "", true},
		{"require_approval shows", bob, KindTool, "deploy", "", nil, "", true},
		{"anonymous", anon, KindTool, "public_status", "", nil, "", true},
		{"nil principal", nil, KindTool, "public_status", "", nil, "", true},
		{"anonymous elsewhere", anon, KindTool, "read_file", "", nil, "", false},
		{"case", alice, KindTool, "Read_file", "", nil, "", false},
		{"look-alike", alice, KindTool, "r\u0435ad_file", "", nil, "", false},
		{"resource", alice, KindResource, "file:///docs/x", "", nil, "", true},
		{"prompt", alice, KindPrompt, "summarize", "", nil, "", true},
		{"prompt not granted", bob, KindPrompt, "summarize", "", nil, "", false},
		{"other virtual server", ci, KindTool, "x", "", nil, "dev", false},
		{"unknown virtual server", ci, KindTool, "x", "", nil, "nope", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs := tt.vs
			if vs == "" {
				vs = "ops"
			}
			r := &Request{Principal: tt.principal, VirtualServer: vs, Kind: tt.kind, Name: tt.tool, Upstream: tt.upstream, Annotations: tt.ann, SourceIP: "203.0.113.7"}
			if got := p.Visible(r); got != tt.want {
				t.Errorf("Visible = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestVisibleAgreesWithDecide checks that a visible tool is one that some
// call could be allowed for, and that a hidden one is denied whatever its
// arguments, over the whole fixture.
func TestVisibleAgreesWithDecide(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, fixture)
	argSets := []map[string]any{nil, {"path": "/tmp/x", "env": "dev"}, {"path": "/etc", "env": "prod"}}
	times := []time.Time{time.Date(2025, 3, 4, 11, 0, 0, 0, time.UTC), time.Date(2025, 3, 4, 23, 0, 0, 0, time.UTC)}
	tools := []string{"read_file", "write_file", "delete_repo", "deploy", "status", "build", "get_secret", "public_x", "restart", "internal_api", "Read_file"}
	for _, pr := range []*identity.Principal{alice, bob, ci, carol, dan, auditor, frozen, anon} {
		for _, tool := range tools {
			r := Request{Principal: pr, VirtualServer: "ops", Kind: KindTool, Name: tool, SourceIP: "203.0.113.7"}
			visible := p.Visible(&r)
			anyAllowed := false
			for _, args := range argSets {
				for _, tm := range times {
					r.Args, r.Time = args, tm
					if d := p.Decide(&r); d.Effect != "deny" {
						anyAllowed = true
					}
				}
			}
			if anyAllowed && !visible {
				t.Errorf("%s/%s: hidden but some call is allowed", pr.Agent, tool)
			}
		}
	}
}

func TestNilPolicyAndRequest(t *testing.T) {
	t.Parallel()
	var p *Policy
	if d := p.Decide(&Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "x"}); d.Effect != "deny" {
		t.Errorf("nil policy: %v", d)
	}
	if p.Visible(&Request{Kind: KindTool}) {
		t.Error("nil policy: visible")
	}
	p = mustCompile(t, nil)
	if d := p.Decide(nil); d.Effect != "deny" {
		t.Errorf("nil request: %v", d)
	}
	if p.Visible(nil) {
		t.Error("nil request: visible")
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"read_file", "read_file", true},
		{"read_file", "read_files", false},
		{"read_*", "read_", true},
		{"read_*", "read_x/y", false},
		{"docs/*", "docs/a", true},
		{"*", "a/b", true},
		{"*_file", "read_file", true},
		{"*_file", "a/read_file", false},
		{"read_?", "read_x", true},
		{"read_?", "read_\u0435", true}, // ? is one rune
		{"[rw]ead", "read", true},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"file:///docs/*.md", "file:///docs/x.md", true},
	}
	for _, tt := range tests {
		g := compileGlob(tt.pat)
		if got := g.match(tt.name); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pat, tt.name, got, tt.want)
		}
	}
}

func TestConcurrentDecide(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, fixture)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				path := "/tmp/x"
				if (i+j)%2 == 0 {
					path = "/etc"
				}
				d := p.Decide(&Request{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: "write_file", Args: map[string]any{"path": path}})
				if want := map[bool]string{true: "allow", false: "deny"}[path == "/tmp/x"]; d.Effect != want {
					t.Errorf("Decide = %s, want %s", d.Effect, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
