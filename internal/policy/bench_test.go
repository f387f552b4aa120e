package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// benchGrants is a typical rule set: 50 grants over 3 virtual servers, 10
// of them with a condition, mixing subject kinds and effects.
func benchGrants() []config.Grant {
	vss := []string{"ops", "dev", "data"}
	whens := []string{
		`args.path.startsWith("/tmp/")`,
		`args.?count.orValue(0) < 100`,
		`request.time.getHours("Europe/Berlin") >= 8 && request.time.getHours("Europe/Berlin") < 18`,
		`tool.annotations.readOnlyHint`,
		`principal.labels.?env.orValue("") != "prod"`,
	}
	var gs []config.Grant
	for i := range 50 {
		g := config.Grant{
			Name:   fmt.Sprintf("g%d", i),
			Target: config.Target{VirtualServer: vss[i%3], Tools: []string{fmt.Sprintf("svc%d_*", i%7)}},
			Effect: config.EffectAllow,
		}
		switch i % 5 {
		case 0:
			g.Subject.Team = fmt.Sprintf("team%d", i%4)
		case 1:
			g.Subject.Role = fmt.Sprintf("role%d", i%3)
		case 2:
			g.Subject.Agent = fmt.Sprintf("agent%d", i)
		case 3:
			g.Subject.Agent = "*"
			g.Effect = config.EffectDeny
			g.Target.Tools = []string{fmt.Sprintf("svc%d_delete*", i%7)}
		case 4:
			g.Subject.Team = fmt.Sprintf("team%d", i%4)
			g.Target.Tools = append(g.Target.Tools, "exact_tool", "other_tool")
		}
		if i%5 != 3 && i%4 == 0 {
			g.When = whens[(i/4)%len(whens)]
		}
		if i == 17 || i == 34 {
			g.Effect = config.EffectRequireApproval
		}
		gs = append(gs, g)
	}
	return gs
}

var benchPrincipal = &identity.Principal{
	Agent: "agent7", Team: "team0", Roles: []string{"role0", "viewer"},
	Labels: map[string]string{"env": "staging"}, Method: "api_key", KeyPrefix: "gh_abcde",
}

func TestBenchGrants(t *testing.T) {
	gs := benchGrants()
	n := 0
	for _, g := range gs {
		if g.When != "" {
			n++
		}
	}
	if len(gs) != 50 || n != 10 {
		t.Fatalf("%d grants, %d with when", len(gs), n)
	}
	p := mustCompile(t, gs)
	for _, c := range benchCases() {
		d := p.Decide(c.req)
		if d.Effect != c.want {
			t.Errorf("%s: %s (%s), want %s; matched %v", c.name, d.Effect, d.Reason, c.want, matchedNames(d))
		}
	}
}

type benchCase struct {
	name string
	req  *Request
	want string
}

func benchCases() []benchCase {
	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	args := map[string]any{"path": "/tmp/report.txt", "count": 3.0}
	return []benchCase{
		// g0 (team0, svc0_*, when over args) and g21 (role0, svc0_*) match:
		// one CEL evaluation.
		{"cel", &Request{Principal: benchPrincipal, VirtualServer: "ops", Kind: KindTool, Name: "svc0_read", Upstream: "u", Args: args, Time: now}, "allow"},
		// g6 (role0 on ops, svc6_*) and no condition.
		{"plain", &Request{Principal: benchPrincipal, VirtualServer: "ops", Kind: KindTool, Name: "svc6_list", Upstream: "u", Args: args, Time: now}, "allow"},
		// g3 (agent *, svc3_delete*) denies; g24 (team0, exact_tool ...) does not cover it.
		{"deny", &Request{Principal: benchPrincipal, VirtualServer: "ops", Kind: KindTool, Name: "svc3_delete_all", Upstream: "u", Args: args, Time: now}, "deny"},
		{"no-grant", &Request{Principal: benchPrincipal, VirtualServer: "dev", Kind: KindTool, Name: "unknown", Upstream: "u", Args: args, Time: now}, "deny"},
	}
}

// BenchmarkDecide measures one decision with 50 grants over 3 virtual
// servers, 10 with conditions.
func BenchmarkDecide(b *testing.B) {
	p := mustCompile(b, benchGrants())
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Decide(c.req); d.Effect != c.want {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// BenchmarkDecideApprovalRules measures decisions of allowed calls with
// the grants of [BenchmarkDecide] and five approval rules that hold calls
// by themselves: one that no rule holds, and one that a rule with a
// condition over the arguments holds.
func BenchmarkDecideApprovalRules(b *testing.B) {
	rules := []config.ApprovalRule{
		{Name: "data-all", ApproverGroups: []string{"sre"}, VirtualServers: []string{"data"}},
		{Name: "deletes", ApproverGroups: []string{"sre"}, Tools: []string{"*_delete*"}},
		{Name: "dev-writes", ApproverGroups: []string{"sre"}, VirtualServers: []string{"dev"}, Tools: []string{"*_write*"}},
		{Name: "prod-reads", ApproverGroups: []string{"sre"}, VirtualServers: []string{"ops"}, Tools: []string{"svc0_*"}, When: `args.?env.orValue("") == "prod"`},
		{Name: "tmp", ApproverGroups: []string{"sre"}, VirtualServers: []string{"ops"}, Tools: []string{"svc6_*"}, When: `args.path.startsWith("/tmp/")`},
	}
	p, err := Compile(benchGrants(), rules...)
	if err != nil {
		b.Fatal(err)
	}
	cases := benchCases()
	for _, c := range []struct {
		name string
		req  *Request
		want string
	}{
		{"not-held", cases[0].req, "allow"},
		{"held", cases[1].req, "require_approval"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Decide(c.req); d.Effect != c.want {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// BenchmarkVisible filters a list of 200 tools for one principal.
func BenchmarkVisible(b *testing.B) {
	p := mustCompile(b, benchGrants())
	reqs := make([]Request, 200)
	for i := range reqs {
		name := fmt.Sprintf("svc%d_tool%d", i%8, i)
		if i%10 == 0 {
			name = fmt.Sprintf("svc%d_delete%d", i%7, i)
		}
		reqs[i] = Request{Principal: benchPrincipal, VirtualServer: "ops", Kind: KindTool, Name: name, Upstream: "u",
			Annotations: map[string]any{"readOnlyHint": i%2 == 0}, Time: time.Now()}
	}
	b.ReportAllocs()
	visible := 0
	for b.Loop() {
		visible = 0
		for i := range reqs {
			if p.Visible(&reqs[i]) {
				visible++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(reqs)), "ns/tool")
	b.ReportMetric(float64(visible), "visible")
}

// BenchmarkAllow measures one rate-limit check against three rules.
func BenchmarkAllow(b *testing.B) {
	l := NewLimiter()
	if err := l.Update([]config.RateLimit{
		{Name: "agent", Key: "agent", Requests: 1 << 30, Per: config.Duration(time.Second)},
		{Name: "team", Key: "team", Requests: 1 << 30, Per: config.Duration(time.Second)},
		{Name: "tool", Key: "tool", Requests: 1 << 30, Per: config.Duration(time.Second), Scope: config.Scope{Tools: []string{"svc*"}}},
	}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, _ := l.Allow(benchPrincipal, "ops", "svc1_read", now); !ok {
			b.Fatal("refused")
		}
	}
}
