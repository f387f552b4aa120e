package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
)

// FieldError is one validation failure at a path inside the document.
type FieldError struct {
	Path   string // e.g. "upstreams[2].url"
	Reason string // e.g. "missing scheme"
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Reason }

// ValidationError collects every [FieldError] in a document, so an admin
// fixes them all in one round.
type ValidationError struct {
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

type validator struct{ errs []*FieldError }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// Validate checks the document for errors that do not depend on what the
// upstreams serve. Collisions between discovered tool names are checked when
// the snapshot is compiled.
func (d *Document) Validate() error { return d.ValidateWith(Externals{}) }

// Externals are entities a document may refer to without defining them:
// those of the store it is merged into (apply without prune), so that a
// file holding only, say, rate limits may scope them to a virtual server
// the store has.
type Externals struct {
	Upstreams      map[string]string // name → transport
	VirtualServers map[string]bool
}

// ValidateWith is Validate for a document merged into ext: references to
// ext's upstreams and virtual servers are known too. The document's own
// entities win over ext's of the same name.
func (d *Document) ValidateWith(ext Externals) error {
	v := new(validator)
	if _, _, err := net.SplitHostPort(d.Listen); err != nil {
		v.add("listen", "want host:port, got %q", d.Listen)
	}
	switch d.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "must be debug, info, warn or error, got %q", d.Log.Level)
	}
	switch d.Log.Format {
	case "json", "text":
	default:
		v.add("log.format", "must be json or text, got %q", d.Log.Format)
	}
	if d.Limits.MaxBodyBytes < 1024 {
		v.add("limits.max_body_bytes", "must be at least 1024, got %d", d.Limits.MaxBodyBytes)
	}
	if d.Limits.SessionTimeout < 0 {
		v.add("limits.session_timeout", "must not be negative")
	}
	if d.Limits.MaxSessions < 1 {
		v.add("limits.max_sessions", "must be at least 1, got %d", d.Limits.MaxSessions)
	}
	if d.Limits.BodyReadTimeout < 0 {
		v.add("limits.body_read_timeout", "must not be negative")
	}
	if d.Limits.MaxSessionsPerAgent < 0 {
		v.add("limits.max_sessions_per_agent", "must not be negative (0: no cap besides limits.max_sessions), got %d", d.Limits.MaxSessionsPerAgent)
	}
	for i, o := range d.HTTP.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" {
			v.add(fmt.Sprintf("http.allowed_origins[%d]", i), "want scheme://host[:port], got %q", o)
		}
	}

	upstreams := map[string]bool{}
	for i := range d.Upstreams {
		d.Upstreams[i].validate(v, fmt.Sprintf("upstreams[%d]", i), upstreams)
	}
	known := maps.Clone(upstreams) // referable: the document's and ext's
	for name := range ext.Upstreams {
		known[name] = true
	}
	vsNames := map[string]bool{}
	for i := range d.VirtualServers {
		d.VirtualServers[i].validate(v, fmt.Sprintf("virtual_servers[%d]", i), vsNames, known)
	}
	for name := range ext.VirtualServers {
		vsNames[name] = true
	}
	agents := map[string]bool{}
	for i := range d.Agents {
		d.Agents[i].validate(v, fmt.Sprintf("agents[%d]", i), agents)
	}
	d.Auth.validate(v)
	d.validateAccess(v, vsNames)
	d.validateSecrets(v, ext.Upstreams)
	if len(v.errs) > 0 {
		return &ValidationError{Fields: v.errs}
	}
	return nil
}

func checkName(v *validator, p, name string, seen map[string]bool) {
	switch {
	case name == "":
		v.add(p, "required")
	case !nameRE.MatchString(name):
		v.add(p, "%q: use letters, digits, '_', '.', '-' (max 128), starting with a letter or digit", clip.String(name, 64))
	case seen[name]:
		v.add(p, "duplicate name %q", name)
	}
	seen[name] = true
}

func (u *Upstream) validate(v *validator, p string, seen map[string]bool) {
	checkName(v, p+".name", u.Name, seen)
	switch u.Transport {
	case TransportStreamableHTTP, TransportSSE:
		if u.URL == "" {
			v.add(p+".url", "required for transport %s", u.Transport)
		} else if !strings.Contains(u.URL, "://") {
			v.add(p+".url", "missing scheme (want e.g. http://host:port/mcp)")
		} else if pu, err := url.Parse(u.URL); err != nil {
			v.add(p+".url", "%v", errors.Unwrap(err))
		} else if pu.Scheme == "" {
			v.add(p+".url", "missing scheme")
		} else if pu.Scheme != "http" && pu.Scheme != "https" {
			v.add(p+".url", "scheme must be http or https, got %q", pu.Scheme)
		} else if pu.Host == "" {
			v.add(p+".url", "missing host")
		} else if u.H2C && pu.Scheme != "http" {
			v.add(p+".h2c", "applies only to http:// URLs (https upstreams negotiate HTTP/2 by ALPN)")
		}
		if u.Command != "" || len(u.Args) > 0 || len(u.Env) > 0 || u.Dir != "" {
			v.add(p, "command, args, env and dir apply only to transport stdio")
		}
		for _, name := range slices.Sorted(maps.Keys(u.Headers)) {
			switch {
			case !httpguts.ValidHeaderFieldName(name):
				v.add(p+".headers", "%q is not a valid HTTP header name", clip.String(name, 64))
			case !httpguts.ValidHeaderFieldValue(u.Headers[name]):
				v.add(p+".headers", "the value of %s has characters an HTTP header cannot carry (a line break or a control character)", name)
			}
		}
	case TransportStdio:
		if strings.TrimSpace(u.Command) == "" {
			v.add(p+".command", "required for transport stdio")
		}
		for _, name := range slices.Sorted(maps.Keys(u.Env)) {
			if name == "" || strings.ContainsAny(name, "=\x00") {
				v.add(p+".env", "%q is not an environment variable name (empty, or with = or NUL)", clip.String(name, 64))
			} else if strings.Contains(u.Env[name], "\x00") {
				v.add(p+".env", "the value of %s contains NUL", name)
			}
		}
		if u.URL != "" || len(u.Headers) > 0 || u.H2C {
			v.add(p, "url, headers and h2c apply only to HTTP transports")
		}
	case "":
		v.add(p+".transport", "required: streamable-http, sse or stdio")
	default:
		v.add(p+".transport", "must be streamable-http, sse or stdio, got %q", u.Transport)
	}
	if u.Timeout < 0 {
		v.add(p+".timeout", "must not be negative")
	}
	if u.ConnectTimeout < 0 {
		v.add(p+".connect_timeout", "must not be negative")
	}
}

func (vs *VirtualServer) validate(v *validator, p string, seen, upstreams map[string]bool) {
	checkName(v, p+".name", vs.Name, seen)
	if len(vs.Include) == 0 {
		v.add(p+".include", "select at least one upstream")
	}
	// Exposed names that are fixed by the config (renames, explicit lists
	// without globs) must not collide across selections; collisions among
	// discovered names are checked when the snapshot compiles.
	exposedTools := map[string]string{}
	exposedPrompts := map[string]string{}
	for i := range vs.Include {
		s := &vs.Include[i]
		sp := fmt.Sprintf("%s.include[%d]", p, i)
		if s.Upstream == "" {
			v.add(sp+".upstream", "required")
		} else if !upstreams[s.Upstream] {
			v.add(sp+".upstream", "unknown upstream %q", s.Upstream)
		}
		for field, list := range map[string][]string{
			"tools": s.Tools, "exclude_tools": s.ExcludeTools,
			"resources": s.Resources, "exclude_resources": s.ExcludeResources,
			"resource_templates": s.ResourceTemplates, "exclude_resource_templates": s.ExcludeResourceTemplates,
			"prompts": s.Prompts, "exclude_prompts": s.ExcludePrompts,
		} {
			for j, pat := range list {
				if _, err := path.Match(pat, ""); err != nil {
					v.add(fmt.Sprintf("%s.%s[%d]", sp, field, j), "bad glob %q", pat)
				}
			}
		}
		checkRenames(v, sp+".rename", sp+".tools", s.Rename, s.Tools, s.ExcludeTools, s.Upstream, exposedTools)
		checkRenames(v, sp+".rename_prompts", sp+".prompts", s.RenamePrompts, s.Prompts, s.ExcludePrompts, s.Upstream, exposedPrompts)
		for name := range s.Descriptions {
			if name == "" {
				v.add(sp+".descriptions", "empty tool name")
			}
		}
	}
}

// checkRenames checks one selection's renames (at path p) and explicit
// include list (at path listPath) against the names other selections of
// the virtual server expose.
func checkRenames(v *validator, p, listPath string, rename map[string]string, include, exclude []string, upstream string, exposed map[string]string) {
	targets := map[string]string{}
	for from, to := range rename {
		if to == "" {
			v.add(p+"."+from, "new name is empty")
			continue
		}
		if prev, ok := targets[to]; ok {
			v.add(p+"."+from, "renames to %q, which %q is already renamed to", to, prev)
		}
		targets[to] = from
		if include != nil && !matchAny(include, from) {
			v.add(p+"."+from, "renames %q, which the include list does not select", from)
		}
		if matchAny(exclude, from) {
			v.add(p+"."+from, "renames %q, which is excluded", from)
		}
		if other, ok := exposed[to]; ok && other != upstream {
			v.add(p+"."+from, "name collision: %q is also exposed by upstream %q", to, other)
		}
		exposed[to] = upstream
	}
	for j, name := range include {
		if strings.ContainsAny(name, "*?[") {
			continue
		}
		if _, renamed := rename[name]; renamed {
			continue
		}
		if other, ok := exposed[name]; ok && other != upstream {
			v.add(fmt.Sprintf("%s[%d]", listPath, j), "name collision: %q is also exposed by upstream %q", name, other)
		}
		exposed[name] = upstream
	}
}

// MatchAny reports whether name matches any of the globs in patterns.
func MatchAny(patterns []string, name string) bool { return matchAny(patterns, name) }

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func (a *Agent) validate(v *validator, p string, seen map[string]bool) {
	checkName(v, p+".name", a.Name, seen)
	for i, k := range a.APIKeys {
		kp := fmt.Sprintf("%s.api_keys[%d]", p, i)
		n := 0
		for _, s := range []string{k.SHA256, k.Env, k.File} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.add(kp, "give exactly one of sha256, env or file")
			continue
		}
		if k.SHA256 != "" {
			if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
				v.add(kp+".sha256", "want 64 hex digits (sha256 of the key)")
			}
		}
	}
}

// CheckExpressions checks every CEL expression of d (grants' and approval
// rules' when, claim subjects of grants and rate limits) with check, which
// compiles one of kind "when" or "claim" (policy.CheckExpression; config
// does not compile CEL itself). The errors are a *ValidationError with
// each expression's path, nil if all compile.
func (d *Document) CheckExpressions(check func(kind, expr string) error) error {
	var bad []*FieldError
	add := func(path, kind, expr string) {
		if expr == "" {
			return
		}
		if err := check(kind, expr); err != nil {
			bad = append(bad, &FieldError{Path: path, Reason: err.Error()})
		}
	}
	for i, g := range d.Grants {
		add(fmt.Sprintf("grants[%d].subject.claim", i), "claim", g.Subject.Claim)
		add(fmt.Sprintf("grants[%d].when", i), "when", g.When)
	}
	for i, l := range d.RateLimits {
		add(fmt.Sprintf("rate_limits[%d].subject.claim", i), "claim", l.Subject.Claim)
	}
	for i, r := range d.ApprovalRules {
		add(fmt.Sprintf("approval_rules[%d].when", i), "when", r.When)
	}
	if len(bad) > 0 {
		return &ValidationError{Fields: bad}
	}
	return nil
}
