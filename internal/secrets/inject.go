package secrets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Pair is one injected value and where it goes.
type Pair struct {
	Name  string
	Value Value
}

// Injection is the secrets one request carries to its upstream. Only the
// upstream sees the values: in headers, query parameters, a process
// environment, or arguments.
type Injection struct {
	Headers []Pair
	Query   []Pair
	Env     []Pair
	Args    []Pair
	// Bindings and LeaseIDs say which bindings supplied secrets and under
	// which leases: what audit records instead of values.
	Bindings []string
	LeaseIDs []string

	scrub  []scrubValue
	leases []*Lease // call-scoped: revoked by Release
	c      *Client
	once   sync.Once
}

type scrubValue struct {
	binding string
	value   string
}

// minScrub is the shortest secret value scrubbed from responses: shorter
// ones would redact ordinary words.
const minScrub = 4

func (in *Injection) add(b *Binding, v Value, f Fields) {
	p := Pair{Name: b.Target, Value: v}
	switch b.Injection {
	case config.InjectHeader:
		p.Name = http.CanonicalHeaderKey(p.Name)
		in.Headers = append(in.Headers, p)
	case config.InjectQuery:
		in.Query = append(in.Query, p)
	case config.InjectEnv:
		in.Env = append(in.Env, p)
	case config.InjectArgument:
		in.Args = append(in.Args, p)
	}
	in.Bindings = append(in.Bindings, b.Name)
	in.addScrub(b.Name, v.Reveal())
	for _, name := range b.injected {
		if fv, ok := f[name]; ok {
			in.addScrub(b.Name, fv.Reveal())
		}
	}
}

func (in *Injection) addScrub(binding, v string) {
	if len(v) < minScrub {
		return
	}
	for _, s := range in.scrub {
		if s.value == v {
			return
		}
	}
	in.scrub = append(in.scrub, scrubValue{binding, v})
	// Longest first, so a rendered value ("Bearer X") is replaced whole
	// before its parts.
	sort.SliceStable(in.scrub, func(i, j int) bool { return len(in.scrub[i].value) > len(in.scrub[j].value) })
}

// Empty reports whether the request carries no secret.
func (in *Injection) Empty() bool { return in == nil || len(in.Bindings) == 0 }

// Release ends the request's use of its secrets: call-scoped leases are
// revoked (in the background; one Vault cannot be told about expires by
// its TTL). Safe to call more than once, and on nil.
func (in *Injection) Release() {
	if in == nil {
		return
	}
	in.once.Do(func() {
		for _, l := range in.leases {
			go in.c.revokeLogged(l)
		}
	})
}

// SetHTTP puts the injection's headers and query parameters on r.
func (in *Injection) SetHTTP(r *http.Request) {
	for _, p := range in.Headers {
		r.Header.Set(p.Name, p.Value.Reveal())
	}
	if len(in.Query) > 0 {
		q := r.URL.Query()
		for _, p := range in.Query {
			q.Set(p.Name, p.Value.Reveal())
		}
		r.URL.RawQuery = q.Encode()
	}
}

// EnvKey identifies the injection's environment: stdio processes are
// pooled by it, so one credential's process never serves another's.
func (in *Injection) EnvKey() string {
	if in == nil || len(in.Env) == 0 {
		return ""
	}
	h := sha256.New()
	for _, p := range in.sortedEnv() {
		fmt.Fprintf(h, "%s=%s\x00", p.Name, p.Value.Reveal())
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// EnvList returns the environment entries (NAME=value) to add to a
// process.
func (in *Injection) EnvList() []string {
	if in == nil {
		return nil
	}
	var out []string
	for _, p := range in.sortedEnv() {
		out = append(out, p.Name+"="+p.Value.Reveal())
	}
	return out
}

func (in *Injection) sortedEnv() []Pair {
	env := append([]Pair(nil), in.Env...)
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	return env
}

// InjectArgs adds the injection's arguments to a tool call's JSON
// arguments (replacing any value the agent sent under those names).
func (in *Injection) InjectArgs(raw json.RawMessage) (json.RawMessage, error) {
	if in == nil || len(in.Args) == 0 {
		return raw, nil
	}
	args := map[string]json.RawMessage{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &args); err != nil {
			return nil, fmt.Errorf("arguments must be a JSON object: %w", err)
		}
	}
	for _, p := range in.Args {
		b, err := json.Marshal(p.Value.Reveal())
		if err != nil {
			return nil, err
		}
		args[p.Name] = b
	}
	return json.Marshal(args)
}

// Scrub replaces every injected secret value in JSON text b (as it appears
// inside a JSON string) with a marker naming the binding. It returns b
// itself when nothing matched.
func (in *Injection) Scrub(b []byte) ([]byte, bool) {
	if in == nil {
		return b, false
	}
	hit := false
	for _, s := range in.scrub {
		for _, form := range jsonForms(s.value) {
			if bytes.Contains(b, form) {
				b = bytes.ReplaceAll(b, form, []byte("[REDACTED:secret "+s.binding+"]"))
				hit = true
			}
		}
	}
	return b, hit
}

// ScrubString is Scrub for plain text.
func (in *Injection) ScrubString(s string) (string, bool) {
	if in == nil {
		return s, false
	}
	b := []byte(s)
	hit := false
	for _, v := range in.scrub {
		if bytes.Contains(b, []byte(v.value)) {
			b = bytes.ReplaceAll(b, []byte(v.value), []byte("[REDACTED:secret "+v.binding+"]"))
			hit = true
		}
	}
	return string(b), hit
}

// jsonForms are the ways v appears inside a JSON string: with and without
// HTML escaping.
func jsonForms(v string) [][]byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	plain := bytes.TrimSpace(buf.Bytes())
	plain = plain[1 : len(plain)-1]
	html, _ := json.Marshal(v)
	html = html[1 : len(html)-1]
	if bytes.Equal(plain, html) {
		return [][]byte{plain}
	}
	return [][]byte{plain, html}
}

type injectionKey struct{}

// WithInjection returns ctx carrying in: HTTP requests made with ctx
// through a [Transport] carry its headers and query parameters, and tool
// calls its arguments (InjectionFrom(ctx).InjectArgs).
func WithInjection(ctx context.Context, in *Injection) context.Context {
	if in.Empty() {
		return ctx
	}
	return context.WithValue(ctx, injectionKey{}, in)
}

// InjectionFrom returns the injection ctx carries, or nil.
func InjectionFrom(ctx context.Context) *Injection {
	in, _ := ctx.Value(injectionKey{}).(*Injection)
	return in
}

// Transport adds the injection of each request's context to it.
type Transport struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	in := InjectionFrom(r.Context())
	if in == nil {
		return base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	in.SetHTTP(r)
	return base.RoundTrip(r)
}
