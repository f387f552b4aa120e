package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// CodeSecretUnavailable: a secret the request needs could not be fetched
// (Vault unreachable, the secret missing, no Vault configured). The message
// and data name the secret binding, never a value. Requests that need no
// secret are unaffected.
const CodeSecretUnavailable = -32057

// credIdle is how long a stdio process started with a credential that is
// not leased per call (a KV secret, a session's lease) stays up unused.
const credIdle = 2 * time.Minute

func secretError(err error) error {
	var se *secrets.Error
	if errors.As(err, &se) {
		data, _ := json.Marshal(map[string]string{"binding": se.Binding})
		return &jsonrpc.Error{Code: CodeSecretUnavailable, Message: se.Error(), Data: data}
	}
	return &jsonrpc.Error{Code: CodeSecretUnavailable, Message: "secret unavailable: " + err.Error()}
}

// IsSecretUnavailable reports whether err is a request's failure to get a
// secret (CodeSecretUnavailable): the upstream was not called.
func IsSecretUnavailable(err error) bool {
	var je *jsonrpc.Error
	return errors.As(err, &je) && je.Code == CodeSecretUnavailable
}

// SecretsReady reports whether the secrets an approved call to upstream's
// tool needs can be fetched now: Vault is configured and answering. It
// fetches nothing (that happens when the call is made).
func (g *Gateway) SecretsReady(ctx context.Context, upstream, tool string) error {
	u := g.upstream(upstream)
	if u == nil {
		return nil // the call itself reports the missing upstream
	}
	for _, b := range u.secretBindings() {
		if !b.AppliesTo(tool) {
			continue
		}
		err := secrets.ErrNoVault
		if g.vault != nil {
			err = g.vault.Check(ctx)
		}
		if err != nil {
			return secretError(&secrets.Error{Binding: b.Name, Err: err})
		}
	}
	return nil
}

// whoOf is the principal a per-principal secret path is rendered for.
func whoOf(p *identity.Principal) secrets.Principal {
	if p == nil {
		return secrets.Principal{}
	}
	return secrets.Principal{Agent: p.Agent, Team: p.Team}
}

// callSecrets fetches the secrets one request to u needs, just now. The
// caller releases the injection when the request is over.
func (g *Gateway) callSecrets(ctx context.Context, u *upstream, as *agentSession, call *Call) (*secrets.Injection, error) {
	bs := u.secretBindings()
	if len(bs) == 0 {
		return nil, nil
	}
	req := secrets.Request{Who: whoOf(as.principal), Session: as.leaseSession()}
	if call.Kind == KindTool {
		req.Tool = call.UpstreamName
	}
	in, err := g.vault.Resolve(ctx, bs, req)
	if err != nil {
		// Not logged here: the request's access log line has the agent,
		// the upstream and this error (outcome secret_unavailable), and a
		// second line per call would double the log while Vault is down.
		return nil, err
	}
	if !in.Empty() {
		if rc := requestFrom(ctx); rc != nil {
			rc.secrets, rc.leases = in.Bindings, in.LeaseIDs
		}
	}
	return in, nil
}

// connSecrets fetches what a new connection to u needs for its whole life:
// the handshake's headers, a stdio process's environment. Per-principal
// secrets go only to an agent's own connection; leases are held until the
// connection closes.
func (u *upstream) connSecrets(ctx context.Context, agent *agentSession, leases *secrets.Session) (*secrets.Injection, error) {
	bs := u.secretBindings()
	if len(bs) == 0 {
		return nil, nil
	}
	req := secrets.Request{Session: leases, Hold: true}
	if agent != nil {
		req.Who = whoOf(agent.principal)
	}
	return u.vault.Resolve(ctx, bs, req)
}

func (u *upstream) secretBindings() []*secrets.Binding {
	if p := u.bindings.Load(); p != nil {
		return *p
	}
	return nil
}

// leaseSession returns the holder of the session's session-scoped leases;
// nil (lease per call) for requests that have no session of their own
// (approved calls, sessionless protocol).
func (as *agentSession) leaseSession() *secrets.Session {
	if as.ss == nil || as.sessionless {
		return nil
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.closed {
		return nil
	}
	if as.leases == nil {
		as.leases = secrets.NewSession()
	}
	return as.leases
}

// connTransport adds a connection's own secrets (resolved when it was
// dialled) to each of its HTTP requests; a request's context may carry
// fresher ones for a call, which win (secrets.Transport, inside).
type connTransport struct {
	base http.RoundTripper
	in   *secrets.Injection
}

func (t connTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	t.in.SetHTTP(r)
	return t.base.RoundTrip(r)
}

// scrubbed returns res with every secret value in ins replaced by a
// marker: an upstream that echoes a credential it was given does not hand
// it to the agent.
func scrubbed[R any](log func(binding string), res R, ins ...*secrets.Injection) R {
	var b []byte
	hit := false
	for _, in := range ins {
		if in.Empty() {
			continue
		}
		if b == nil {
			var err error
			if b, err = json.Marshal(res); err != nil {
				return res
			}
		}
		var h bool
		if b, h = in.Scrub(b); h {
			hit = true
			log(in.Bindings[0])
		}
	}
	if !hit {
		return res
	}
	var out R
	if err := json.Unmarshal(b, &out); err != nil {
		return res
	}
	return out
}

// scrubErr is scrubbed for an upstream's JSON-RPC error.
func scrubErr(log func(string), err error, ins ...*secrets.Injection) error {
	var je *jsonrpc.Error
	if !errors.As(err, &je) {
		return err
	}
	out := *je
	for _, in := range ins {
		if in.Empty() {
			continue
		}
		var hit, dhit bool
		out.Message, hit = in.ScrubString(out.Message)
		out.Data, dhit = in.Scrub(out.Data)
		if hit || dhit {
			log(in.Bindings[0])
		}
	}
	return &out
}

// hiddenArgs lists, by upstream and upstream tool, the arguments that
// secrets are injected into: agents never see them in a tool's schema.
type hiddenArgs map[string][]*secrets.Binding

func (h hiddenArgs) of(upstream, tool string) []string {
	var out []string
	for _, b := range h[upstream] {
		if b.Injection == config.InjectArgument && b.AppliesTo(tool) {
			out = append(out, b.Target)
		}
	}
	return out
}

// withoutArgs returns a copy of a tool's input schema without the named
// properties (nor their required entries).
func withoutArgs(schema any, names []string) any { return dropArgs(schema, names, true) }

// optionalArgs returns a copy of a tool's input schema in which the named
// properties are not required: arguments are validated against it, as the
// agent is not asked for them, and a value it sends anyway is replaced.
func optionalArgs(schema any, names []string) any { return dropArgs(schema, names, false) }

func dropArgs(schema any, names []string, dropProps bool) any {
	m, ok := schema.(map[string]any)
	if !ok || len(names) == 0 {
		return schema
	}
	out := maps.Clone(m)
	if props, ok := m["properties"].(map[string]any); ok && dropProps {
		p := maps.Clone(props)
		for _, n := range names {
			delete(p, n)
		}
		out["properties"] = p
	}
	if req, ok := m["required"].([]any); ok {
		out["required"] = slices.DeleteFunc(slices.Clone(req), func(v any) bool {
			s, _ := v.(string)
			return slices.Contains(names, s)
		})
	}
	return out
}

// credProc is a stdio upstream process started with one credential in its
// environment, for the requests that carry that credential.
type credProc struct {
	ready chan struct{}
	conn  *upstreamConn
	err   error
	refs  int
	// once closes when the last request using it ends: its credential
	// was leased for that request.
	once  bool
	owner *agentSession // session whose lease it runs on, reaped with it
	idle  *time.Timer
}

// credConn returns the process for the credential in (starting one if
// none runs) and a release func for when the request is over.
func (u *upstream) credConn(ctx context.Context, in *secrets.Injection, as *agentSession) (*upstreamConn, func(), error) {
	key := in.EnvKey()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil, nil, &UnavailableError{Upstream: u.name(), Reason: "stopped"}
	}
	p := u.creds[key]
	spawn := p == nil
	if spawn {
		p = &credProc{ready: make(chan struct{}), once: in.CallLeased()}
		if !p.once && as != nil && len(in.LeaseIDs) > 0 {
			p.owner = as
		}
		if u.creds == nil {
			u.creds = map[string]*credProc{}
		}
		u.creds[key] = p
	}
	p.refs++
	if p.idle != nil {
		p.idle.Stop()
	}
	u.mu.Unlock()
	release := func() { u.releaseCred(key, p) }
	if spawn {
		p.conn, p.err = u.connectEnv(u.ctx, in.EnvList(), key)
		if p.err != nil {
			u.mu.Lock()
			if u.creds[key] == p {
				delete(u.creds, key)
			}
			u.mu.Unlock()
		} else {
			u.log.Info("stdio process started for a credential", "bindings", in.Bindings, "lease_ids", in.LeaseIDs)
			if p.owner != nil {
				p.owner.ownProc(func() { u.reapCred(key, p) })
			}
		}
		close(p.ready)
	}
	select {
	case <-p.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if p.err != nil {
		release()
		return nil, nil, &UnavailableError{Upstream: u.name(), Reason: cleanErr(p.err)}
	}
	return p.conn, release, nil
}

func (u *upstream) releaseCred(key string, p *credProc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p.refs--
	if p.refs > 0 || p.conn == nil {
		return
	}
	if p.once {
		u.reapLocked(key, p)
		return
	}
	p.idle = time.AfterFunc(credIdle, func() { u.reapCred(key, p) })
}

// reapCred stops a credential's process unless it is in use.
func (u *upstream) reapCred(key string, p *credProc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if p.refs == 0 {
		u.reapLocked(key, p)
	} else {
		p.once = true // the lease ended: stop it when the last request ends
	}
}

func (u *upstream) reapLocked(key string, p *credProc) {
	if u.creds[key] == p {
		delete(u.creds, key)
	}
	if p.conn != nil {
		go func() { _ = p.conn.cs.Close() }()
	}
}

// dropCred forgets a credential process whose session failed.
func (u *upstream) dropCred(c *upstreamConn) {
	u.mu.Lock()
	if p := u.creds[c.cred]; p != nil && p.conn == c {
		delete(u.creds, c.cred)
	}
	u.mu.Unlock()
	_ = c.cs.Close()
}

// stopCreds stops every credential process (the upstream is stopping).
func (u *upstream) stopCreds() {
	u.mu.Lock()
	procs := u.creds
	u.creds = nil
	u.mu.Unlock()
	for _, p := range procs {
		<-p.ready
		if p.conn != nil {
			_ = p.conn.cs.Close()
		}
	}
}

// ownProc registers a stop func to run when the session closes (its
// leases end).
func (as *agentSession) ownProc(stop func()) {
	as.mu.Lock()
	if !as.closed {
		as.procs = append(as.procs, stop)
		as.mu.Unlock()
		return
	}
	as.mu.Unlock()
	stop()
}

// toolSchemaFor returns the tool definition agents see.
func toolDefFor(t *mcp.Tool, hidden []string) *mcp.Tool {
	def := *t
	if len(hidden) > 0 {
		def.InputSchema = withoutArgs(t.InputSchema, hidden)
	}
	return &def
}
