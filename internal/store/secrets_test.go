package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/schema/schematype"
	"github.com/gatehouse-dev/gatehouse/ent/secretbinding"
	"github.com/gatehouse-dev/gatehouse/ent/upstream"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

const secretsYAML = `
upstreams:
  - {name: web, transport: streamable-http, url: "http://127.0.0.1:18080/mcp"}
  - {name: proc, transport: stdio, command: x}
  - {name: old, transport: sse, url: "http://127.0.0.1:9000/sse"}
secret_bindings:
  - name: gh
    description: GitHub token of each agent
    upstream: web
    tools: ["create_*", search_code]
    source: kv
    path: "secret/agents/{{.agent}}/github"
    key: token
    version: 3
    injection: header
    target: Authorization
    template: "Bearer {{.Value}}"
    per_principal: true
  - {name: db, upstream: proc, tools: [], source: dynamic, path: database, role: readonly, lease_scope: session,
     injection: env, target: DATABASE_URL, template: "postgresql://{{.username}}:{{.password}}@db/app"}
  - {name: arg, upstream: old, source: dynamic, path: database, role: readonly, key: password, injection: argument, target: password}
`

// planOf formats a result's changes as the plan prints them.
func planOf(res *ApplyResult) []string {
	var lines []string
	for _, ch := range res.Changes {
		lines = append(lines, ch.String())
	}
	return lines
}

// TestApplyExportSecretBindings applies a document with secret bindings of
// every kind, exports it back equal, applies the export without a change,
// and updates, moves and prunes bindings.
func TestApplyExportSecretBindings(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, c *ent.Client) {
		ctx := context.Background()
		want, err := config.Parse([]byte(secretsYAML))
		if err != nil {
			t.Fatal(err)
		}
		raw := *want
		raw.SecretBindings = slices.Clone(want.SecretBindings)
		raw.SecretBindings[0].LeaseScope = ""
		res, err := ApplyDocument(ctx, c, &raw, ApplyOptions{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if got, wantLines := planOf(res), []string{
			"upstream web created", "upstream proc created", "upstream old created",
			"secret_binding gh created", "secret_binding db created", "secret_binding arg created",
		}; !slices.Equal(got, wantLines) {
			t.Errorf("changes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
		}
		if raw.SecretBindings[0].LeaseScope != "" {
			t.Error("ApplyDocument changed the caller's document")
		}
		if b := c.SecretBinding.Query().Where(secretbinding.Name("db")).WithUpstream().OnlyX(ctx); b.Edges.Upstream.Name != "proc" ||
			b.LeaseScope != secretbinding.LeaseScopeSession || b.Tools == nil || b.CreatedBy != "test" {
			t.Errorf("stored binding %+v", b)
		}

		got, err := ExportDocument(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("export does not validate: %v", err)
		}
		slices.SortFunc(want.SecretBindings, func(a, b config.SecretBinding) int { return strings.Compare(a.Name, b.Name) })
		if !reflect.DeepEqual(got.SecretBindings, want.SecretBindings) {
			t.Errorf("secret bindings:\ngot  %+v\nwant %+v", got.SecretBindings, want.SecretBindings)
		}
		rev := revision(t, c)
		if res, err := ApplyDocument(ctx, c, got, ApplyOptions{Prune: true}); err != nil || len(res.Changes) != 0 || revision(t, c) != rev {
			t.Errorf("applying the export: %v %v", res, err)
		}
		// Through YAML too, as `gatehouse export | gatehouse apply` does.
		out, err := config.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := config.Parse(out)
		if err != nil {
			t.Fatalf("the export does not parse: %v\n%s", err, out)
		}
		if res, err := ApplyDocument(ctx, c, back, ApplyOptions{Prune: true, DryRun: true}); err != nil || len(res.Changes) != 0 {
			t.Errorf("export | apply --dry-run --prune: %v %v\n%s", planOf(res), err, out)
		}

		// Changed in place, moved to another upstream while its old one is
		// pruned (the move comes first, so the binding survives), and
		// pruned (listed in the plan, not deleted unseen by the cascade).
		next := *want // arg, db, gh
		next.Upstreams = want.Upstreams[:2]
		next.SecretBindings = slices.Clone(want.SecretBindings[:2])
		next.SecretBindings[0].Upstream = "web"
		next.SecretBindings[1].Template = "postgresql://{{.username}}:{{.password}}@db2/app"
		next.SecretBindings[1].Tools = nil
		wantLines := []string{
			"secret_binding gh deleted",
			"secret_binding arg updated (upstream)",
			"secret_binding db updated (tools, template)",
			"upstream old deleted",
		}
		res, err = ApplyDocument(ctx, c, &next, ApplyOptions{Prune: true, DryRun: true})
		if err != nil || !slices.Equal(planOf(res), wantLines) {
			t.Errorf("dry run: %v\n%s\nwant\n%s", err, strings.Join(planOf(res), "\n"), strings.Join(wantLines, "\n"))
		}
		if n := c.SecretBinding.Query().CountX(ctx); n != 3 {
			t.Errorf("the dry run left %d bindings", n)
		}
		res, err = ApplyDocument(ctx, c, &next, ApplyOptions{Prune: true})
		if err != nil || !slices.Equal(planOf(res), wantLines) {
			t.Errorf("apply: %v\n%s\nwant\n%s", err, strings.Join(planOf(res), "\n"), strings.Join(wantLines, "\n"))
		}
		if b := c.SecretBinding.Query().Where(secretbinding.Name("arg")).WithUpstream().OnlyX(ctx); b.Edges.Upstream.Name != "web" {
			t.Errorf("arg belongs to %q", b.Edges.Upstream.Name)
		}

		// Without prune, a binding the store keeps must fit the transport
		// the document gives its upstream; with prune it goes.
		http := next
		http.Upstreams = slices.Clone(next.Upstreams)
		http.Upstreams[1] = config.Upstream{Name: "proc", Transport: config.TransportSSE, URL: "http://127.0.0.1:9001/sse"}
		http.SecretBindings = next.SecretBindings[:1]
		var ve *config.ValidationError
		if _, err := ApplyDocument(ctx, c, &http, ApplyOptions{}); !errors.As(err, &ve) || len(ve.Fields) != 1 ||
			ve.Fields[0].Path != "upstreams[1].transport" || !strings.Contains(ve.Fields[0].Reason, `secret binding "db"`) {
			t.Errorf("an HTTP upstream keeping an env binding: %v", err)
		}
		res, err = ApplyDocument(ctx, c, &http, ApplyOptions{Prune: true})
		if err != nil || !slices.Equal(planOf(res), []string{"secret_binding db deleted", "upstream proc updated (transport, url, command)"}) {
			t.Errorf("with prune: %v %v", planOf(res), err)
		}

		// An invalid binding changes nothing and is reported at its path.
		bad := next
		bad.SecretBindings = []config.SecretBinding{{Name: "x", Upstream: "web", Source: "kv", Path: "secret/x", Key: "k",
			Injection: "env", Target: "X", Template: "{{.Value"}}
		_, err = ApplyDocument(ctx, c, &bad, ApplyOptions{Prune: true})
		if !errors.As(err, &ve) || len(ve.Fields) != 2 || ve.Fields[0].Path != "secret_bindings[0].injection" || ve.Fields[1].Path != "secret_bindings[0].template" {
			t.Errorf("invalid binding: %v", err)
		}
	})
}

// TestSecretBindingChecks checks what the store refuses on every write of
// a binding, whoever writes it: what config.SecretBinding.Check finds
// (the schema's hook), and an injection its upstream's transport cannot
// take (the store's); and that CheckUpstreamTransport finds the bindings a
// new transport would not fit.
func TestSecretBindingChecks(t *testing.T) {
	t.Parallel()
	c := openTest(t)
	ctx := context.Background()
	proc := c.Upstream.Create().SetName("proc").SetTransport(schematype.TransportStdio).SetCommand("x").SaveX(ctx)
	web := c.Upstream.Create().SetName("web").SetTransport(schematype.TransportStreamableHTTP).SetURL("http://x/mcp").SaveX(ctx)
	kv := func(u *ent.Upstream, injection secretbinding.Injection, target string) *ent.SecretBindingCreate {
		return c.SecretBinding.Create().SetName("b-" + u.Name + "-" + string(injection)).SetUpstream(u).SetSource(secretbinding.SourceKv).
			SetPath("secret/x").SetKey("k").SetInjection(injection).SetTarget(target)
	}
	fields := func(err error) []string {
		var fes schematype.FieldErrors
		if !errors.As(err, &fes) {
			return []string{"not FieldErrors: " + errFmt(err)}
		}
		var out []string
		for _, fe := range fes {
			out = append(out, fe.Field+": "+fe.Reason)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		create *ent.SecretBindingCreate
		want   string // the first error, as field: reason
	}{
		{"header into stdio", kv(proc, secretbinding.InjectionHeader, "Authorization"), "injection: injection header needs an HTTP upstream"},
		{"env into HTTP", kv(web, secretbinding.InjectionEnv, "TOKEN"), "injection: injection env needs a stdio upstream"},
		{"bad template", kv(web, secretbinding.InjectionHeader, "Authorization").SetTemplate("Bearer {{.Value"), "template: bad template: line 1: unclosed action"},
		{"bad header", kv(web, secretbinding.InjectionHeader, "Bad Header"), `target: "Bad Header" is not an HTTP header name`},
		{"lease of kv", kv(web, secretbinding.InjectionHeader, "X-Key").SetLeaseScope(secretbinding.LeaseScopeSession), "lease_scope: applies only to source dynamic"},
		{"path template", kv(web, secretbinding.InjectionHeader, "X-Key").SetPath("secret/{{.agent}}/{{.tool}}").SetPerPrincipal(true), "path: refers to {{.tool}}"},
	} {
		if got := fields(tc.create.Exec(ctx)); len(got) == 0 || !strings.HasPrefix(got[0], tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := c.SecretBinding.Query().CountX(ctx); n != 0 {
		t.Fatalf("%d bindings stored", n)
	}

	// Updates are checked against the binding as they leave it.
	b := kv(proc, secretbinding.InjectionEnv, "TOKEN").SaveX(ctx)
	if got := fields(c.SecretBinding.UpdateOne(b).SetInjection(secretbinding.InjectionQuery).Exec(ctx)); len(got) != 1 || !strings.HasPrefix(got[0], "injection: injection query needs an HTTP upstream") {
		t.Errorf("update to query on stdio: %q", got)
	}
	if got := fields(c.SecretBinding.UpdateOne(b).SetUpstream(web).Exec(ctx)); len(got) != 1 || !strings.HasPrefix(got[0], "injection: injection env needs a stdio upstream") {
		t.Errorf("move to an HTTP upstream: %q", got)
	}
	if got := fields(c.SecretBinding.UpdateOne(b).SetTarget("1X").Exec(ctx)); len(got) != 1 || !strings.HasPrefix(got[0], `target: "1X" is not an environment variable name`) {
		t.Errorf("update to a bad env name: %q", got)
	}
	c.SecretBinding.UpdateOne(b).SetUpstream(web).SetInjection(secretbinding.InjectionHeader).SetTarget("X-Key").ExecX(ctx)

	// CheckUpstreamTransport names each binding a transport would not fit.
	if err := CheckUpstreamTransport(ctx, c, web.ID, "sse"); err != nil {
		t.Errorf("sse for a header binding: %v", err)
	}
	if got := fields(CheckUpstreamTransport(ctx, c, web.ID, "stdio")); len(got) != 1 || !strings.HasPrefix(got[0], `transport: secret binding "b-proc-env": injection header needs an HTTP upstream`) {
		t.Errorf("stdio for a header binding: %q", got)
	}
	if err := CheckUpstreamTransport(ctx, c, proc.ID, "sse"); err != nil {
		t.Errorf("an upstream without bindings: %v", err)
	}
	if n := c.SecretBinding.Query().Where(secretbinding.HasUpstreamWith(upstream.Name("web"))).CountX(ctx); n != 1 {
		t.Errorf("%d bindings on web", n)
	}
}

func errFmt(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
