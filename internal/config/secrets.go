package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// Secret sources.
const (
	SecretSourceKV      = "kv"
	SecretSourceDynamic = "dynamic"
)

// Secret injections.
const (
	InjectHeader   = "header"
	InjectQuery    = "query"
	InjectEnv      = "env"
	InjectArgument = "argument"
)

// Lease scopes of dynamic secrets.
const (
	LeaseCall    = "call"
	LeaseSession = "session"
)

// SecretBinding injects a secret from Vault into an upstream's requests,
// just in time: it is read when a request needs it, never stored, never
// shown to agents. The document holds where the secret lives, never its
// value.
type SecretBinding struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Upstream is the upstream whose requests get the secret.
	Upstream string `yaml:"upstream"`
	// Tools narrows the binding to calls of these upstream tools (globs,
	// path.Match syntax, over the upstream's own tool names). Nil means
	// every request to the upstream (including its handshake and
	// listings); an empty list means none.
	Tools []string `yaml:"tools"`
	// Source is kv (a KV v2 secret) or dynamic (credentials a secrets
	// engine role issues with a lease).
	Source string `yaml:"source"`
	// Path is, for kv, the secret's path including its mount
	// ("secret/github"); for dynamic, the secrets engine mount
	// ("database"). With PerPrincipal it is a Go template over the calling
	// agent: "secret/agents/{{.agent}}/github".
	Path string `yaml:"path"`
	// Key is the field of the KV secret's data that becomes {{.Value}};
	// required for kv.
	Key string `yaml:"key"`
	// Version pins a KV version; 0 means the latest.
	Version int `yaml:"version"`
	// Role is the secrets engine role whose credentials are requested
	// ({{path}}/creds/{{role}}); required for dynamic.
	Role string `yaml:"role"`
	// LeaseScope is call (a lease per call, revoked when the call ends;
	// the default) or session (one lease per agent session, revoked when
	// the session ends). Dynamic secrets only.
	LeaseScope string `yaml:"lease_scope"`
	// Injection is header, query, env (of a stdio upstream's process) or
	// argument (a tool argument the agent never sees).
	Injection string `yaml:"injection"`
	// Target names the header, query parameter, environment variable or
	// argument.
	Target string `yaml:"target"`
	// Template renders the injected value from the secret's fields
	// ("Bearer {{.Value}}", "postgresql://{{.username}}:{{.password}}@db/app").
	// Empty injects {{.Value}} as is.
	Template string `yaml:"template"`
	// PerPrincipal gives each agent its own secret: Path is rendered for
	// the calling agent, and requests without an agent (discovery) do not
	// get the secret.
	PerPrincipal bool `yaml:"per_principal"`
}

// Limits of a [SecretBinding]'s fields; the config store's schema applies
// the same.
const (
	maxSecretPath     = 1024
	maxSecretKey      = 256
	maxSecretTarget   = 256
	maxSecretTemplate = 1024
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedHeaders are the headers a binding may not set: they frame the
// request or belong to the MCP session, which the gateway manages.
var reservedHeaders = []string{
	"Connection", "Content-Length", "Content-Type", "Host", "Keep-Alive",
	"Mcp-Protocol-Version", "Mcp-Session-Id", "Proxy-Connection", "Te",
	"Trailer", "Transfer-Encoding", "Upgrade",
}

// Check returns what is wrong with b by itself, each problem at the key it
// concerns (source, path, template, ...): required fields, enum values,
// the fields that apply to one source or injection only, the target's
// form, and the templates ([SecretBinding.ParsedTemplates]). What depends
// on the rest of the configuration is the caller's to check: the name and
// its uniqueness, the tools' globs, that the upstream exists, and that its
// transport takes the injection ([CheckInjection]). The config store's
// schema runs it on every write of a secret binding, so the document and
// the admin API refuse the same bindings with the same words.
func (b *SecretBinding) Check() []*FieldError {
	var errs []*FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Path: key, Reason: fmt.Sprintf(format, args...)})
	}
	kv, dynamic := b.Source == SecretSourceKV, b.Source == SecretSourceDynamic
	switch {
	case kv, dynamic:
	case b.Source == "":
		add("source", "required: kv or dynamic")
	default:
		add("source", "must be kv or dynamic, got %q", b.Source)
	}
	switch {
	case b.Path == "":
		add("path", "required: the KV secret's path including its mount (secret/github), or the secrets engine mount (database)")
	case len(b.Path) > maxSecretPath:
		add("path", "longer than %d characters", maxSecretPath)
	}
	if len(b.Key) > maxSecretKey {
		add("key", "longer than %d characters", maxSecretKey)
	}
	if len(b.Role) > maxSecretKey {
		add("role", "longer than %d characters", maxSecretKey)
	}
	switch {
	case kv && b.Key == "":
		add("key", "required for source kv: the field of the secret's data to inject")
	case kv && b.Role != "":
		add("role", "applies only to source dynamic")
	case dynamic && b.Role == "":
		add("role", "required for source dynamic: the secrets engine role whose credentials are requested")
	case dynamic && strings.Contains(b.Role, "/"):
		add("role", "%q: a role name cannot contain '/'", b.Role)
	}
	switch {
	case b.Version < 0:
		add("version", "must not be negative (0 means the latest)")
	case b.Version > 0 && dynamic:
		add("version", "applies only to source kv")
	}
	switch b.LeaseScope {
	case "", LeaseCall:
	case LeaseSession:
		if kv {
			add("lease_scope", "applies only to source dynamic (a KV secret has no lease)")
		}
	default:
		add("lease_scope", "must be call or session, got %q", b.LeaseScope)
	}
	b.checkTarget(add)
	if len(b.Template) > maxSecretTemplate {
		add("template", "longer than %d characters", maxSecretTemplate)
	}
	_, value, err := b.ParsedTemplates()
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		errs = append(errs, fe)
	case err != nil:
		add("template", "%v", err)
	case !dynamic || b.Key != "":
		// (A kv binding without key is reported at key.)
	case value == nil:
		add("template", "required without key: an empty template injects the field that key names; set key, or a template such as {{.password}}")
	case slices.Contains(TemplateFields(value), "Value"):
		add("template", "uses {{.Value}}, which needs key (the field of the secret that becomes .Value): set key, or name the fields, e.g. {{.password}}")
	}
	return errs
}

// checkTarget checks Injection and, for it, Target.
func (b *SecretBinding) checkTarget(add func(key, format string, args ...any)) {
	t := b.Target
	switch b.Injection {
	case InjectHeader:
		switch {
		case t == "":
			add("target", "required: the header to set, e.g. Authorization")
		case !validHeaderName(t):
			add("target", "%q is not an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", t)
		case slices.ContainsFunc(reservedHeaders, func(h string) bool { return strings.EqualFold(h, t) }):
			add("target", "the gateway sets %s itself: inject into another header", t)
		}
	case InjectQuery:
		if t == "" {
			add("target", "required: the query parameter to set")
		}
	case InjectEnv:
		switch {
		case t == "":
			add("target", "required: the environment variable to set")
		case !envNameRE.MatchString(t):
			add("target", "%q is not an environment variable name (letters, digits and '_', not starting with a digit)", t)
		}
	case InjectArgument:
		if t == "" {
			add("target", "required: the tool argument to set")
		}
	case "":
		add("injection", "required: header, query, env or argument")
	default:
		add("injection", "must be header, query, env or argument, got %q", b.Injection)
	}
	if len(t) > maxSecretTarget {
		add("target", "longer than %d characters", maxSecretTarget)
	}
}

// validHeaderName reports whether s is an HTTP header field name: one or
// more token characters (RFC 9110, section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// CheckInjection reports whether an upstream of transport (streamable-http,
// sse or stdio) can take a secret by injection: header and query need an
// HTTP transport, env a stdio process; argument suits both. It returns nil
// for an empty or unknown transport or injection, which are reported
// elsewhere.
func CheckInjection(injection, transport string) error {
	http := transport == TransportStreamableHTTP || transport == TransportSSE
	switch {
	case (injection == InjectHeader || injection == InjectQuery) && transport == TransportStdio:
		return fmt.Errorf("injection %s needs an HTTP upstream, and the upstream runs over stdio: use env or argument", injection)
	case injection == InjectEnv && http:
		return fmt.Errorf("injection env needs a stdio upstream, and the upstream runs over %s: use header, query or argument", transport)
	}
	return nil
}

/*
Templates of a secret binding.

Two fields of a binding are Go text/templates, parsed in one place
([SecretBinding.ParsedTemplates]) for the validation of documents and of the
admin API and for the gateway, so that what is accepted is what runs.

The path is a template only with per_principal. It is executed with
[SecretPathData]: the calling agent's name under "agent" and "Agent" and its
team under "team" and "Team", and may refer to nothing else
("secret/agents/{{.agent}}/github"). An agent without a team has no "team":
a path that uses it fails for that agent rather than reading a secret
shared by all teamless agents.

The template renders the injected value. It is executed with
[SecretValueData]: the fields of the secret's data by name ({{.username}},
{{.password}}) and "Value", the field that key names. An empty template
injects {{.Value}} as is.

Both use missingkey=error: a field the secret or caller lacks fails the
request instead of injecting "<no value>".
*/

// Names of the template data of a per-principal path.
var pathTemplateFields = []string{"agent", "Agent", "team", "Team"}

// ParsedTemplates parses b's templates (see the comment above), both with
// missingkey=error: path is the per-principal path template, nil unless
// PerPrincipal (b.Path is then the path as it is), to execute with
// [SecretPathData]; value is the template of the injected value, nil when
// Template is empty (the field Key names is injected as it is), to execute
// with [SecretValueData]. A path template that refers to anything but the
// caller, or not to the caller at all, is an error, as is a template
// outside PerPrincipal. An error is a *[FieldError] at "path" or
// "template". [SecretBinding.Check] calls it; so should the gateway, to
// run what was validated.
func (b *SecretBinding) ParsedTemplates() (path, value *template.Template, err error) {
	if b.PerPrincipal {
		if path, err = parsePathTemplate(b.Path); err != nil {
			return nil, nil, &FieldError{Path: "path", Reason: err.Error()}
		}
	} else if strings.Contains(b.Path, "{{") {
		return nil, nil, &FieldError{Path: "path", Reason: "is a template, which only a per_principal binding renders: set per_principal, or remove the {{ }}"}
	}
	if b.Template == "" {
		return path, nil, nil
	}
	value, err = template.New("template").Option("missingkey=error").Parse(b.Template)
	if err != nil {
		return nil, nil, &FieldError{Path: "template", Reason: templateError(err)}
	}
	return path, value, nil
}

// parsePathTemplate parses a per-principal path and checks that it refers
// to the caller only, and at all.
func parsePathTemplate(src string) (*template.Template, error) {
	t, err := template.New("path").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, errors.New(templateError(err))
	}
	var bad []string
	used := false
	for _, name := range TemplateFields(t) {
		if slices.Contains(pathTemplateFields, name) {
			used = true
		} else {
			bad = append(bad, name)
		}
	}
	switch {
	case len(bad) > 0:
		return nil, fmt.Errorf("refers to %s: a per_principal path may use only {{.agent}} and {{.team}} (or .Agent, .Team)", joinFields(bad))
	case !used:
		return nil, errors.New("does not use {{.agent}} or {{.team}}, so every agent would get the same secret: use them in the path, or unset per_principal")
	}
	// Executing it once finds what parsing does not (a function given the
	// wrong arguments); the values are the shape of real names.
	if err := t.Execute(io.Discard, SecretPathData("agent", "team")); err != nil {
		return nil, errors.New(templateError(err))
	}
	return t, nil
}

// walkFields calls f with the top-level field of the data that each field
// reference under n names ({{.agent}}, {{$.team}}: "agent", "team"); "."
// for the data itself ({{.}}). In the body of a with or range, where dot is
// something else, only $ refers to the data.
func walkFields(n parse.Node, f func(string)) { walk(n, f, false) }

func walk(n parse.Node, f func(string), rebound bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, f, rebound)
		}
	case *parse.ActionNode:
		walk(n.Pipe, f, rebound)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walk(c, f, rebound)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, f, rebound)
		}
	case *parse.ChainNode:
		walk(n.Node, f, rebound)
	case *parse.FieldNode:
		if !rebound {
			f(n.Ident[0])
		}
	case *parse.DotNode:
		if !rebound {
			f(".")
		}
	case *parse.VariableNode:
		switch {
		case n.Ident[0] != "$":
		case len(n.Ident) > 1:
			f(n.Ident[1])
		default:
			f(".")
		}
	case *parse.IfNode:
		walk(n.Pipe, f, rebound)
		walk(n.List, f, rebound)
		walk(n.ElseList, f, rebound)
	case *parse.RangeNode:
		walk(n.Pipe, f, rebound)
		walk(n.List, f, true)
		walk(n.ElseList, f, rebound)
	case *parse.WithNode:
		walk(n.Pipe, f, rebound)
		walk(n.List, f, true)
		walk(n.ElseList, f, rebound)
	case *parse.TemplateNode:
		walk(n.Pipe, f, rebound)
	}
}

// joinFields formats field names for a message: {{.x}}, {{.y}}.
func joinFields(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		if n == "." {
			out[i] = "{{.}}"
		} else {
			out[i] = "{{." + n + "}}"
		}
	}
	return strings.Join(out, ", ")
}

var templateErrorRE = regexp.MustCompile(`^template: (?:path|template):(\d+)(?::(\d+))?: (?:executing "(?:path|template)" )?(.*)$`)

// templateError rewords an error of text/template for an admin: without
// the name of our template, with line and column spelled out.
func templateError(err error) string {
	m := templateErrorRE.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return "bad template: " + err.Error()
	case m[2] == "":
		return fmt.Sprintf("bad template: line %s: %s", m[1], m[3])
	default:
		return fmt.Sprintf("bad template: line %s, column %s: %s", m[1], m[2], m[3])
	}
}

// SecretPathData is the data a per-principal path template is executed
// with: agent and team under "agent"/"Agent" and "team"/"Team". An empty
// agent or team is left out, so that a path that uses it fails
// (missingkey=error) instead of naming a secret shared by every caller
// without one.
func SecretPathData(agent, team string) map[string]string {
	d := make(map[string]string, 4)
	if agent != "" {
		d["agent"], d["Agent"] = agent, agent
	}
	if team != "" {
		d["team"], d["Team"] = team, team
	}
	return d
}

// SecretValueData is the data a value template is executed with: the
// fields of the secret's data by name, and under "Value" the field named
// key (left out when key is "" or the secret lacks it; it replaces a field
// of the secret named Value). fields is not modified.
func SecretValueData(fields map[string]string, key string) map[string]string {
	d := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		d[k] = v
	}
	if v, ok := fields[key]; ok && key != "" {
		d["Value"] = v
	}
	return d
}

// TemplateFields returns the top-level fields of the data that t (and the
// templates it defines) refers to, in order of appearance, each once:
// "Value", "password" for "{{.Value}}:{{.password}}"; "." for the data
// itself ({{.}}).
func TemplateFields(t *template.Template) []string {
	var out []string
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		walkFields(tt.Tree.Root, func(name string) {
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		})
	}
	return out
}

// validate checks b at path p (e.g. "secret_bindings[0]"): [SecretBinding.Check],
// its name, tools and upstream, which must be one of upstreams (by name,
// with its transport) and take the injection.
func (b *SecretBinding) validate(v *validator, p string, seen map[string]bool, upstreams map[string]string) {
	checkName(v, p+".name", b.Name, seen)
	switch transport, ok := upstreams[b.Upstream]; {
	case b.Upstream == "":
		v.add(p+".upstream", "required")
	case !ok:
		v.add(p+".upstream", "unknown upstream %q", b.Upstream)
	default:
		if err := CheckInjection(b.Injection, transport); err != nil {
			v.add(p+".injection", "%v", err)
		}
	}
	checkGlobs(v, p+".tools", b.Tools)
	for _, e := range b.Check() {
		v.add(p+"."+e.Path, "%s", e.Reason)
	}
}

func (d *Document) validateSecrets(v *validator, ext map[string]string) {
	upstreams := maps.Clone(ext)
	if upstreams == nil {
		upstreams = make(map[string]string, len(d.Upstreams))
	}
	for _, u := range d.Upstreams {
		upstreams[u.Name] = u.Transport
	}
	seen := map[string]bool{}
	for i := range d.SecretBindings {
		d.SecretBindings[i].validate(v, fmt.Sprintf("secret_bindings[%d]", i), seen, upstreams)
	}
}

func (d *Document) secretDefaults() {
	for i := range d.SecretBindings {
		if d.SecretBindings[i].LeaseScope == "" {
			d.SecretBindings[i].LeaseScope = LeaseCall
		}
	}
}
