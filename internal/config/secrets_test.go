package config

import (
	"reflect"
	"strings"
	"testing"
	"text/template"
)

// secretsBase is a document with an HTTP and a stdio upstream, for secret
// bindings to name.
const secretsBase = `upstreams:
  - {name: web, transport: streamable-http, url: http://x/mcp}
  - {name: proc, transport: stdio, command: x}
secret_bindings:
`

// TestSecretBindingErrors checks each rule of secret bindings, as Parse
// reports it: at its path in the document, in words an admin acts on.
func TestSecretBindingErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, binding string
		want          []string // each error, in order
	}{
		{"empty", `{}`, []string{
			"secret_bindings[0].name: required",
			"secret_bindings[0].upstream: required",
			"secret_bindings[0].source: required: kv or dynamic",
			"secret_bindings[0].path: required",
			"secret_bindings[0].injection: required: header, query, env or argument",
		}},
		{"unknown upstream", `{name: s, upstream: nope, source: kv, path: secret/x, key: k, injection: argument, target: token}`,
			[]string{`secret_bindings[0].upstream: unknown upstream "nope"`}},
		{"bad source", `{name: s, upstream: web, source: file, path: secret/x, injection: header, target: X-Key}`,
			[]string{`secret_bindings[0].source: must be kv or dynamic, got "file"`}},
		{"bad injection", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: cookie, target: c}`,
			[]string{`secret_bindings[0].injection: must be header, query, env or argument, got "cookie"`}},
		{"kv without key", `{name: s, upstream: web, source: kv, path: secret/x, injection: header, target: Authorization}`,
			[]string{"secret_bindings[0].key: required for source kv"}},
		{"kv with role and lease", `{name: s, upstream: web, source: kv, path: secret/x, key: k, role: r, lease_scope: session, injection: header, target: Authorization}`,
			[]string{"secret_bindings[0].role: applies only to source dynamic", "secret_bindings[0].lease_scope: applies only to source dynamic"}},
		{"dynamic without role", `{name: s, upstream: proc, source: dynamic, path: database, key: password, injection: env, target: PGPASSWORD}`,
			[]string{"secret_bindings[0].role: required for source dynamic"}},
		{"dynamic role with slash", `{name: s, upstream: proc, source: dynamic, path: database, role: ../x, key: password, injection: env, target: PGPASSWORD}`,
			[]string{`secret_bindings[0].role: "../x": a role name cannot contain '/'`}},
		{"dynamic with version", `{name: s, upstream: proc, source: dynamic, path: database, role: r, key: password, version: 2, injection: env, target: PGPASSWORD}`,
			[]string{"secret_bindings[0].version: applies only to source kv"}},
		{"negative version", `{name: s, upstream: web, source: kv, path: secret/x, key: k, version: -1, injection: header, target: X-Key}`,
			[]string{"secret_bindings[0].version: must not be negative"}},
		{"bad lease scope", `{name: s, upstream: proc, source: dynamic, path: database, role: r, key: password, lease_scope: forever, injection: env, target: PGPASSWORD}`,
			[]string{`secret_bindings[0].lease_scope: must be call or session, got "forever"`}},
		{"dynamic with nothing to inject", `{name: s, upstream: proc, source: dynamic, path: database, role: r, injection: env, target: DATABASE_URL}`,
			[]string{"secret_bindings[0].template: required without key"}},
		{"dynamic Value without key", `{name: s, upstream: proc, source: dynamic, path: database, role: r, injection: env, target: DATABASE_URL, template: "{{.Value}}"}`,
			[]string{"secret_bindings[0].template: uses {{.Value}}, which needs key"}},
		{"header not a header name", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: header, target: "X Key"}`,
			[]string{`secret_bindings[0].target: "X Key" is not an HTTP header name`}},
		{"reserved header", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: header, target: mcp-session-id}`,
			[]string{"secret_bindings[0].target: the gateway sets mcp-session-id itself"}},
		{"env not an env name", `{name: s, upstream: proc, source: kv, path: secret/x, key: k, injection: env, target: 1PASSWORD}`,
			[]string{`secret_bindings[0].target: "1PASSWORD" is not an environment variable name`}},
		{"argument without target", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: argument}`,
			[]string{"secret_bindings[0].target: required: the tool argument to set"}},
		{"query without target", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: query}`,
			[]string{"secret_bindings[0].target: required: the query parameter to set"}},
		{"header into stdio", `{name: s, upstream: proc, source: kv, path: secret/x, key: k, injection: header, target: Authorization}`,
			[]string{"secret_bindings[0].injection: injection header needs an HTTP upstream, and the upstream runs over stdio"}},
		{"query into stdio", `{name: s, upstream: proc, source: kv, path: secret/x, key: k, injection: query, target: token}`,
			[]string{"secret_bindings[0].injection: injection query needs an HTTP upstream"}},
		{"env into HTTP", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: env, target: TOKEN}`,
			[]string{"secret_bindings[0].injection: injection env needs a stdio upstream, and the upstream runs over streamable-http"}},
		{"template does not parse", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: header, target: Authorization, template: "Bearer {{.Value"}`,
			[]string{"secret_bindings[0].template: bad template: line 1: unclosed action"}},
		{"template with unknown function", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: header, target: Authorization, template: "{{.Value | b64}}"}`,
			[]string{`secret_bindings[0].template: bad template: line 1: function "b64" not defined`}},
		{"path template without per_principal", `{name: s, upstream: web, source: kv, path: "secret/{{.agent}}", key: k, injection: header, target: Authorization}`,
			[]string{"secret_bindings[0].path: is a template, which only a per_principal binding renders"}},
		{"per-principal path does not parse", `{name: s, upstream: web, source: kv, path: "secret/{{.agent", key: k, injection: header, target: Authorization, per_principal: true}`,
			[]string{"secret_bindings[0].path: bad template: line 1: unclosed action"}},
		{"per-principal path refers to other data", `{name: s, upstream: web, source: kv, path: "secret/{{.agent}}/{{.tool}}/{{$.env}}", key: k, injection: header, target: Authorization, per_principal: true}`,
			[]string{"secret_bindings[0].path: refers to {{.tool}}, {{.env}}: a per_principal path may use only {{.agent}} and {{.team}}"}},
		{"per-principal path is the data", `{name: s, upstream: web, source: kv, path: "secret/{{.}}", key: k, injection: header, target: Authorization, per_principal: true}`,
			[]string{"secret_bindings[0].path: refers to {{.}}"}},
		{"per-principal path without the caller", `{name: s, upstream: web, source: kv, path: secret/shared, key: k, injection: header, target: Authorization, per_principal: true}`,
			[]string{"secret_bindings[0].path: does not use {{.agent}} or {{.team}}"}},
		{"per-principal path fails to run", `{name: s, upstream: web, source: kv, path: "secret/{{slice .agent 10}}", key: k, injection: header, target: Authorization, per_principal: true}`,
			[]string{"secret_bindings[0].path: bad template: line 1, column 9: at <slice .agent 10>: error calling slice"}},
		{"bad tools glob", `{name: s, upstream: web, tools: ["["], source: kv, path: secret/x, key: k, injection: header, target: X-Key}`,
			[]string{`secret_bindings[0].tools[0]: bad pattern "["`}},
		{"long target", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: argument, target: ` + strings.Repeat("a", 257) + `}`,
			[]string{"secret_bindings[0].target: longer than 256 characters"}},
		{"duplicate name", `{name: s, upstream: web, source: kv, path: secret/x, key: k, injection: header, target: X-Key}
  - {name: s, upstream: web, source: kv, path: secret/y, key: k, injection: header, target: X-Other}`,
			[]string{`secret_bindings[1].name: duplicate name "s"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(secretsBase + "  - " + tc.binding + "\n"))
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("error %v, want a *ValidationError", err)
			}
			if len(ve.Fields) != len(tc.want) {
				t.Fatalf("errors %q, want %d: %q", ve, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if got := ve.Fields[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d: %q\nwant it to start with %q", i, got, w)
				}
			}
		})
	}
}

// TestSecretBindingValid checks that well-formed bindings of every kind
// pass, and their defaults.
func TestSecretBindingValid(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte(secretsBase + `  - {name: gh, upstream: web, tools: ["create_*"], source: kv, path: secret/github, key: token, version: 2, injection: header, target: Authorization, template: "Bearer {{.Value}}"}
  - {name: gh-q, upstream: web, source: kv, path: "secret/teams/{{.Team}}/{{.Agent}}", key: token, injection: query, target: access_token, per_principal: true}
  - {name: db, upstream: proc, source: dynamic, path: database, role: readonly, lease_scope: session, injection: env, target: DATABASE_URL,
     template: "postgresql://{{.username}}:{{.password}}@db/app"}
  - {name: db-arg, upstream: web, source: dynamic, path: database, role: readonly, key: password, injection: argument, target: password}
  - {name: mixed, upstream: proc, source: kv, path: "secret/{{with .team}}teams/{{.}}{{else}}agents/{{$.agent}}{{end}}", key: k, injection: argument, target: x, per_principal: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range d.SecretBindings {
		if b.LeaseScope == "" {
			t.Errorf("%s: lease_scope not defaulted", b.Name)
		}
	}
	if d.SecretBindings[0].LeaseScope != LeaseCall || d.SecretBindings[2].LeaseScope != LeaseSession {
		t.Errorf("lease scopes %q, %q", d.SecretBindings[0].LeaseScope, d.SecretBindings[2].LeaseScope)
	}
}

// TestSecretTemplates runs the parsed templates with the data conventions
// the gateway uses.
func TestSecretTemplates(t *testing.T) {
	t.Parallel()
	run := func(tm *template.Template, data map[string]string) (string, error) {
		var sb strings.Builder
		err := tm.Execute(&sb, data)
		return sb.String(), err
	}

	// A literal path and no template: nothing to run.
	b := SecretBinding{Source: SecretSourceKV, Path: "secret/github", Key: "token"}
	if p, v, err := b.ParsedTemplates(); p != nil || v != nil || err != nil {
		t.Errorf("literal binding: %v %v %v", p, v, err)
	}

	// Per principal: the path renders for the caller; a caller without a
	// team fails where the path uses it.
	b = SecretBinding{Source: SecretSourceKV, Path: "secret/{{.team}}/{{.Agent}}", Key: "token", PerPrincipal: true, Template: "Bearer {{.Value}}"}
	path, value, err := b.ParsedTemplates()
	if err != nil || path == nil || value == nil {
		t.Fatalf("ParsedTemplates: %v %v %v", path, value, err)
	}
	if got, err := run(path, SecretPathData("ci-bot", "qa")); got != "secret/qa/ci-bot" || err != nil {
		t.Errorf("path %q, %v", got, err)
	}
	if _, err := run(path, SecretPathData("ci-bot", "")); err == nil || !strings.Contains(err.Error(), `map has no entry for key "team"`) {
		t.Errorf("path without a team: %v", err)
	}

	// The value: {{.Value}} is the field key names; other fields by name; a
	// field the secret lacks is an error, not "<no value>".
	fields := map[string]string{"token": "s3cret", "username": "u", "password": "p"}
	if got, err := run(value, SecretValueData(fields, b.Key)); got != "Bearer s3cret" || err != nil {
		t.Errorf("value %q, %v", got, err)
	}
	b = SecretBinding{Source: SecretSourceDynamic, Path: "database", Role: "r", Template: "{{.username}}:{{.password}}@{{.host}}"}
	_, value, err = b.ParsedTemplates()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(value, SecretValueData(fields, "")); err == nil || !strings.Contains(err.Error(), `map has no entry for key "host"`) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("missing field: %v", err)
	}
	if d := SecretValueData(fields, "missing"); d["Value"] != "" || len(d) != 3 {
		t.Errorf("SecretValueData with a key the secret lacks: %v", d)
	}
	if fields["Value"] != "" {
		t.Error("SecretValueData modified its argument")
	}

	// TemplateFields names what a template reads, once each.
	tm := template.Must(template.New("t").Parse(`{{.Value}}:{{.password}}{{if .host}}@{{.host}}{{end}}{{range .list}}{{.inner}}{{end}}{{$.Value}}`))
	if got, want := TemplateFields(tm), []string{"Value", "password", "host", "list"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TemplateFields %q, want %q", got, want)
	}

	// Errors are field errors at the key.
	b = SecretBinding{Source: SecretSourceKV, Path: "secret/x", Key: "k", Template: "{{"}
	if _, _, err := b.ParsedTemplates(); err == nil {
		t.Error("bad template parsed")
	} else if fe, ok := err.(*FieldError); !ok || fe.Path != "template" {
		t.Errorf("error %#v, want a *FieldError at template", err)
	}
}

// TestCheckInjection checks which transports take which injections.
func TestCheckInjection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		injection, transport string
		ok                   bool
	}{
		{InjectHeader, TransportStreamableHTTP, true},
		{InjectHeader, TransportSSE, true},
		{InjectHeader, TransportStdio, false},
		{InjectQuery, TransportSSE, true},
		{InjectQuery, TransportStdio, false},
		{InjectEnv, TransportStdio, true},
		{InjectEnv, TransportStreamableHTTP, false},
		{InjectEnv, TransportSSE, false},
		{InjectArgument, TransportStdio, true},
		{InjectArgument, TransportStreamableHTTP, true},
	} {
		if err := CheckInjection(tc.injection, tc.transport); (err == nil) != tc.ok {
			t.Errorf("CheckInjection(%s, %s) = %v, want ok %v", tc.injection, tc.transport, err, tc.ok)
		}
	}
}
