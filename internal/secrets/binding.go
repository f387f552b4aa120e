package secrets

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"text/template"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Binding is a compiled [config.SecretBinding].
type Binding struct {
	config.SecretBinding
	path  *template.Template // nil: Path is literal
	value *template.Template // nil: inject the Key field as is
	// injected are the secret's fields that reach the upstream (those the
	// template names, or Key): what an echo of the secret is scrubbed for.
	injected []string
}

// Compile checks and compiles bindings, by upstream name.
func Compile(bs []config.SecretBinding) (map[string][]*Binding, error) {
	out := map[string][]*Binding{}
	for _, b := range bs {
		cb, err := compile(b)
		if err != nil {
			return nil, fmt.Errorf("secret binding %q: %w", b.Name, err)
		}
		out[b.Upstream] = append(out[b.Upstream], cb)
	}
	return out, nil
}

func compile(b config.SecretBinding) (*Binding, error) {
	pathT, valueT, err := b.ParsedTemplates()
	if err != nil {
		return nil, err
	}
	cb := &Binding{SecretBinding: b, path: pathT, value: valueT}
	switch {
	case valueT != nil:
		for _, f := range config.TemplateFields(valueT) {
			if f == "Value" {
				f = b.Key
			}
			cb.injected = append(cb.injected, f)
		}
	case b.Key != "":
		cb.injected = []string{b.Key}
	default:
		return nil, errors.New("give a key or a template: nothing says what to inject")
	}
	return cb, nil
}

// AppliesTo reports whether b covers a request for the upstream's tool
// (empty for requests that are not tool calls).
func (b *Binding) AppliesTo(tool string) bool {
	if b.Tools == nil {
		return true
	}
	if tool == "" {
		return false
	}
	for _, g := range b.Tools {
		if ok, _ := path.Match(g, tool); ok {
			return true
		}
	}
	return false
}

// vaultPath renders the binding's Vault path for who.
func (b *Binding) vaultPath(who Principal) (string, error) {
	if b.path == nil {
		return b.Path, nil
	}
	var sb strings.Builder
	if err := b.path.Execute(&sb, config.SecretPathData(who.Agent, who.Team)); err != nil {
		return "", fmt.Errorf("path template: %w", err)
	}
	p := sb.String()
	if strings.Contains(p, "..") || strings.Contains(p, "//") {
		return "", fmt.Errorf("path %q is not a clean Vault path", p)
	}
	return p, nil
}

// render produces the injected value from the secret's fields.
func (b *Binding) render(f Fields) (Value, error) {
	if b.value == nil {
		v, ok := f[b.Key]
		if !ok {
			return Value{}, fmt.Errorf("the secret has no field %q", b.Key)
		}
		return v, nil
	}
	fields := make(map[string]string, len(f))
	for k, v := range f {
		fields[k] = v.Reveal()
	}
	if _, ok := f[b.Key]; b.Key != "" && !ok {
		return Value{}, fmt.Errorf("the secret has no field %q", b.Key)
	}
	var sb strings.Builder
	if err := b.value.Execute(&sb, config.SecretValueData(fields, b.Key)); err != nil {
		// Execution errors name template positions and missing keys,
		// never data values.
		return Value{}, fmt.Errorf("template: %w", err)
	}
	return NewValue(sb.String()), nil
}

// Principal is who a request is made for.
type Principal struct {
	Agent string
	Team  string
}

// Error is a secret that could not be provided. It names the binding and
// the Vault path, never a value.
type Error struct {
	Binding string
	Path    string
	Err     error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("secret binding %q: %v", e.Binding, e.Err)
	}
	return fmt.Sprintf("secret binding %q (vault path %s): %v", e.Binding, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNoVault is the cause of a binding's failure when no Vault is
// configured.
var ErrNoVault = errors.New("no Vault is configured (serve --vault-addr)")

// Request says which request needs secrets.
type Request struct {
	// Tool is the upstream's own tool name for tools/call; empty for
	// other requests.
	Tool string
	// Who is the agent; zero for the gateway's own requests (discovery,
	// health), which get no per-principal secrets.
	Who Principal
	// Session holds session-scoped leases; nil leases per call.
	Session *Session
	// Hold puts every lease in Session, whatever the binding's scope: for
	// what a connection needs for its whole life (an HTTP session's
	// handshake, a stdio process's environment).
	Hold bool
}

// Resolve fetches, just now, the secrets bindings provide for req and
// returns how to inject them. The caller must Release the injection when
// the request is over (that revokes call-scoped leases). c may be nil (no
// Vault configured): requests that need a secret then fail.
func (c *Client) Resolve(ctx context.Context, bindings []*Binding, req Request) (*Injection, error) {
	in := &Injection{c: c}
	for _, b := range bindings {
		if !b.AppliesTo(req.Tool) || (b.PerPrincipal && req.Who.Agent == "") {
			continue
		}
		if err := c.resolveOne(ctx, b, req, in); err != nil {
			in.Release()
			return nil, err
		}
	}
	return in, nil
}

func (c *Client) resolveOne(ctx context.Context, b *Binding, req Request, in *Injection) error {
	p, err := b.vaultPath(req.Who)
	if err != nil {
		return &Error{Binding: b.Name, Err: err}
	}
	fail := func(err error) error { return &Error{Binding: b.Name, Path: p, Err: err} }
	if c == nil {
		return fail(ErrNoVault)
	}
	var f Fields
	switch b.Source {
	case config.SecretSourceDynamic:
		var l *Lease
		if req.Session != nil && (b.LeaseScope == config.LeaseSession || req.Hold) {
			l, err = req.Session.lease(ctx, c, b.Name+"\x00"+p, p, b.Role)
		} else {
			l, err = c.Lease(ctx, p, b.Role)
			if err == nil {
				in.leases = append(in.leases, l)
			}
		}
		if err != nil {
			return fail(err)
		}
		f = l.Fields
		in.LeaseIDs = append(in.LeaseIDs, l.ID)
	default:
		if f, err = c.ReadKV(ctx, p, b.Version); err != nil {
			return fail(err)
		}
	}
	v, err := b.render(f)
	if err != nil {
		return fail(err)
	}
	in.add(b, v, f)
	return nil
}

// Session holds the session-scoped leases of one agent session (or of a
// stdio process the gateway runs with credentials): each is renewed while
// the session lives and revoked when it closes.
type Session struct {
	mu     sync.Mutex
	leases map[string]*heldLease
	closed bool
	c      *Client
}

type heldLease struct {
	l    *Lease
	stop chan struct{}
}

// NewSession starts an empty session.
func NewSession() *Session { return &Session{leases: map[string]*heldLease{}} }

func (s *Session) lease(ctx context.Context, c *Client, key, mount, role string) (*Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("session closed")
	}
	if h := s.leases[key]; h != nil {
		return h.l, nil
	}
	l, err := c.Lease(ctx, mount, role)
	if err != nil {
		return nil, err
	}
	h := &heldLease{l: l, stop: make(chan struct{})}
	s.leases[key] = h
	s.c = c
	c.watch(l, h.stop, func() {
		// Renewal ended: forget the lease so the next request gets a new one.
		s.mu.Lock()
		if s.leases[key] == h {
			delete(s.leases, key)
		}
		s.mu.Unlock()
	})
	return l, nil
}

// LeaseIDs lists the leases the session holds.
func (s *Session) LeaseIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, h := range s.leases {
		ids = append(ids, h.l.ID)
	}
	return ids
}

// CallLeased reports whether the injection holds call-scoped leases, which
// end with the request.
func (in *Injection) CallLeased() bool { return in != nil && len(in.leases) > 0 }

// Close revokes the session's leases (in the background: a session ends
// without waiting on Vault; a lease Vault cannot be told about expires by
// its TTL).
func (s *Session) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	held := s.leases
	s.leases, s.closed = nil, true
	c := s.c
	s.mu.Unlock()
	for _, h := range held {
		close(h.stop)
		go c.revokeLogged(h.l)
	}
}

// revokeLogged revokes a lease, logging (its ID, never its data) when it
// fails.
func (c *Client) revokeLogged(l *Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.cfg.Timeout)
	defer cancel()
	if err := c.Revoke(ctx, l.ID); err != nil {
		c.log.Warn("vault lease not revoked; it expires by its TTL", "lease_id", l.ID, "ttl", l.Duration.String(), "error", err)
		return
	}
	c.log.Debug("vault lease revoked", "lease_id", l.ID)
}
