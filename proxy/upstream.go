package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// upstreamProtocol is the protocol version the gateway asks upstreams for.
// Agents reach the gateway's faces over session-based protocol versions
// (the faces are stateful), and on those a server may call back into the
// client mid-request: sampling, elicitation, roots. Left to its default, the
// go-sdk client would negotiate the sessionless 2026-07-28 with upstreams
// that support it (stdio ones, stateless HTTP ones), where such callbacks are
// refused ("return an InputRequests map instead"), so relaying them breaks.
// On 2025-11-25 both styles work: servers that return InputRequests have the
// go-sdk call the client for them.
const upstreamProtocol = "2025-11-25"

// Health states of an upstream, as shown on /readyz and in metrics.
const (
	StateConnecting = "connecting"
	StateReady      = "ready"
	StateDown       = "down"
	StateDisabled   = "disabled"
)

// Backoff bounds for reconnecting to (or respawning) an upstream.
const (
	backoffMin     = 250 * time.Millisecond
	backoffMax     = 30 * time.Second
	healthInterval = 10 * time.Second
	healthTimeout  = 5 * time.Second
	// stableAfter is how long a session must have lived for its loss to
	// be reconnected at once; one lost sooner (a stdio server that crashes
	// right after initializing, say) waits out the backoff first, so a
	// crash loop is not respawned as fast as it can die.
	stableAfter = 10 * time.Second
)

// Health is a point-in-time view of an upstream.
type Health struct {
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Error string    `json:"error,omitempty"`
	// Restarts counts reconnects (stdio: process respawns) since start.
	Restarts int `json:"restarts"`
}

// Catalog is what an upstream serves, as last listed by the gateway.
type Catalog struct {
	Init      *mcp.InitializeResult
	Tools     []*mcp.Tool
	Resources []*mcp.Resource
	Templates []*mcp.ResourceTemplate
	Prompts   []*mcp.Prompt
}

// upstream supervises one configured MCP server: it keeps a control session
// open (discovery, health, resource subscriptions, and every call for stdio
// upstreams, which have exactly one session), reconnects with backoff when
// it drops, and dials per-agent sessions for HTTP upstreams.
type upstream struct {
	cfg        config.Upstream
	log        *slog.Logger
	httpClient *http.Client
	// newClient builds the go-sdk client for a connection; conn is the
	// gateway's record of that connection, used to route what the upstream
	// sends back toward agents.
	newClient func(u *upstream, conn *upstreamConn) *mcp.Client
	// onCatalog is called after the catalog changed.
	onCatalog func(u *upstream)
	// onState is called after the health state changed.
	onState func(u *upstream, h Health)
	// onControl is called, on a goroutine of its own, with each new control
	// session once it is in place (the first one and every reconnection).
	onControl func(ctx context.Context, u *upstream, conn *upstreamConn)
	// vault and bindings provide the secrets requests to the upstream
	// carry (secrets.go).
	vault    *secrets.Client
	bindings atomic.Pointer[[]*secrets.Binding]
	ctx      context.Context // the upstream's life, for processes it starts

	mu      sync.Mutex
	control *upstreamConn
	health  Health
	// agentErr is health's error as agents see it (cleanErr: no URLs).
	agentErr string
	catalog  *Catalog
	closed   bool
	recheck  chan struct{}
	stopped  chan struct{}
	cancel   context.CancelFunc
	restarts int
	// creds are stdio processes started with a credential, by its
	// secrets.Injection.EnvKey; controlEnv is the control process's.
	creds      map[string]*credProc
	controlEnv string
}

// shared reports whether all agents share the control session. Stdio
// upstreams are one process with one session; HTTP upstreams get a session
// per agent session so that logging levels, server-to-client requests and
// session state stay per agent.
func (u *upstream) shared() bool { return u.cfg.Transport == config.TransportStdio }

func (u *upstream) name() string { return u.cfg.Name }

// start begins supervising; it returns at once.
func (u *upstream) start(ctx context.Context) {
	ctx, u.cancel = context.WithCancel(ctx)
	u.ctx = ctx
	u.recheck = make(chan struct{}, 1)
	u.stopped = make(chan struct{})
	if u.cfg.Disabled {
		u.setState(StateDisabled, nil)
		close(u.stopped)
		return
	}
	u.setState(StateConnecting, nil)
	go u.supervise(ctx)
}

// stop closes the control session and stops reconnecting.
func (u *upstream) stop() {
	u.mu.Lock()
	u.closed = true
	c := u.control
	u.mu.Unlock()
	if u.cancel != nil {
		u.cancel()
	}
	if c != nil {
		_ = c.cs.Close()
	}
	u.stopCreds()
	if u.stopped != nil {
		<-u.stopped
	}
}

// Health returns the current health.
func (u *upstream) Health() Health {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.health
}

// Catalog returns the last listed catalog, or nil before the first connect.
func (u *upstream) Catalog() *Catalog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.catalog
}

func (u *upstream) setState(state string, err error) {
	u.mu.Lock()
	h := Health{State: state, Since: time.Now(), Restarts: u.restarts}
	u.agentErr = ""
	if err != nil {
		h.Error = err.Error()
		u.agentErr = cleanErr(err)
	}
	changed := u.health.State != state || u.health.Error != h.Error
	if !changed {
		h.Since = u.health.Since
	}
	u.health = h
	u.mu.Unlock()
	if changed {
		if err != nil {
			u.log.Warn("upstream state", "state", state, "error", err)
		} else {
			u.log.Info("upstream state", "state", state)
		}
		if u.onState != nil {
			u.onState(u, h)
		}
	}
}

// markSuspect asks the supervisor to check health now, e.g. after a call
// failed at the transport level.
func (u *upstream) markSuspect() {
	select {
	case u.recheck <- struct{}{}:
	default:
	}
}

// supervise keeps the control session up until ctx ends.
func (u *upstream) supervise(ctx context.Context) {
	defer close(u.stopped)
	backoff := backoffMin
	for ctx.Err() == nil {
		conn, err := u.connect(ctx, nil, true)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.setState(StateDown, err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, backoffMax)
			u.mu.Lock()
			u.restarts++
			u.mu.Unlock()
			continue
		}
		u.mu.Lock()
		u.control = conn
		u.mu.Unlock()
		if u.onControl != nil {
			go u.onControl(ctx, u, conn)
		}
		if err := u.refreshCatalog(ctx); err != nil {
			u.log.Warn("list upstream features", "error", err)
		}
		u.setState(StateReady, nil)
		up := time.Now()
		err = u.watch(ctx, conn)
		u.mu.Lock()
		u.control = nil
		u.mu.Unlock()
		_ = conn.cs.Close()
		if ctx.Err() != nil {
			return
		}
		u.setState(StateDown, err)
		u.mu.Lock()
		u.restarts++
		u.mu.Unlock()
		if time.Since(up) >= stableAfter {
			backoff = backoffMin
			continue
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// watch blocks until the control session ends or stops answering pings.
func (u *upstream) watch(ctx context.Context, conn *upstreamConn) error {
	done := make(chan error, 1)
	go func() { done <- conn.cs.Wait() }()
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			if err == nil {
				err = errors.New("session closed by upstream")
			}
			return fmt.Errorf("session ended: %w", err)
		case <-t.C:
		case <-u.recheck:
		}
		pctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := conn.cs.Ping(pctx, nil)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("health check: %w", err)
		}
	}
}

// connect opens a new session to the upstream. control marks the
// supervisor's own session; agent is nil for it.
//
// The context given to the go-sdk must outlive the handshake: HTTP
// transports tie their long-lived streams to it. So the connect timeout is
// enforced by a timer that cancels it, and the session's context is
// cancelled only when the session is closed (or base ends).
func (u *upstream) connect(base context.Context, agent *agentSession, control bool) (*upstreamConn, error) {
	conn := &upstreamConn{up: u, agent: agent, control: control}
	if len(u.secretBindings()) > 0 {
		conn.leases = secrets.NewSession()
	}
	in, err := u.connSecrets(base, agent, conn.leases)
	if err != nil {
		conn.leases.Close()
		return nil, err
	}
	conn.in = in
	if control && u.shared() {
		u.mu.Lock()
		u.controlEnv = in.EnvKey()
		u.mu.Unlock()
	}
	t, err := u.transport(in, in.EnvList())
	if err != nil {
		conn.leases.Close()
		return nil, err
	}
	return u.dial(base, conn, t)
}

// connectEnv starts a stdio process with env added to its environment
// (a credential; see credConn), with its own session.
func (u *upstream) connectEnv(base context.Context, env []string, key string) (*upstreamConn, error) {
	t, err := u.transport(nil, env)
	if err != nil {
		return nil, err
	}
	return u.dial(base, &upstreamConn{up: u, cred: key}, t)
}

// dial connects conn over t; see connect.
func (u *upstream) dial(base context.Context, conn *upstreamConn, t mcp.Transport) (*upstreamConn, error) {
	ctx, cancel := context.WithCancel(base)
	timeout := u.cfg.ConnectTimeout.Std()
	timer := time.AfterFunc(timeout, cancel)
	// When the session ends, the client calls sessionEnded (in a goroutine
	// of its own, so it may wait here for dial to settle): a session that
	// dial returned ends its connection; a failed one dial cleans up.
	settled := make(chan bool, 1)
	conn.sessionEnded = func() {
		if <-settled {
			cancel()
			conn.leases.Close() // the connection's credentials end with it
			conn.end()
		}
	}
	client := u.newClient(u, conn)
	cs, err := client.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: upstreamProtocol})
	if !timer.Stop() && err == nil {
		_ = cs.Close()
		err = context.DeadlineExceeded
	}
	if err != nil {
		settled <- false
		cancel()
		conn.leases.Close()
		if ctx.Err() != nil && base.Err() == nil {
			err = fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	conn.cs = cs
	conn.client = client
	settled <- true
	return conn, nil
}

// transport builds a fresh go-sdk transport for one connection. in holds
// the connection's secrets for HTTP upstreams; env is added to a stdio
// process's environment.
func (u *upstream) transport(in *secrets.Injection, env []string) (mcp.Transport, error) {
	hc := u.httpClient
	if in != nil && len(in.Headers)+len(in.Query) > 0 {
		c := *hc
		base := c.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		c.Transport = connTransport{base: base, in: in}
		hc = &c
	}
	switch u.cfg.Transport {
	case config.TransportStreamableHTTP:
		return &mcp.StreamableClientTransport{
			Endpoint:   u.cfg.URL,
			HTTPClient: hc,
			MaxRetries: 2,
		}, nil
	case config.TransportSSE:
		return &mcp.SSEClientTransport{Endpoint: u.cfg.URL, HTTPClient: hc}, nil
	case config.TransportStdio:
		cmd := exec.Command(u.cfg.Command, u.cfg.Args...)
		cmd.Dir = u.cfg.Dir
		cmd.Env = append(stdioEnv(u.cfg.Env), env...)
		cmd.Stderr = &lineLogger{log: u.log}
		return &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil
	}
	return nil, fmt.Errorf("unknown transport %q", u.cfg.Transport)
}

// stdioInherit are the gateway's environment variables a stdio upstream
// inherits. Everything else must be configured explicitly, so gateway
// credentials never leak into tool processes.
var stdioInherit = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT"}

func stdioEnv(extra map[string]string) []string {
	var env []string
	for _, k := range stdioInherit {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// refreshCatalog lists everything the upstream serves, following cursors.
func (u *upstream) refreshCatalog(ctx context.Context) error {
	u.mu.Lock()
	conn := u.control
	u.mu.Unlock()
	if conn == nil {
		return errors.New("not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout.Std())
	defer cancel()
	cs := conn.cs
	cat := &Catalog{Init: cs.InitializeResult()}
	caps := cat.Init.Capabilities
	if caps == nil {
		caps = &mcp.ServerCapabilities{}
	}
	var errs []error
	if caps.Tools != nil {
		cat.Tools = collect(cs.Tools(ctx, nil), "tools/list", &errs)
	}
	if caps.Resources != nil {
		cat.Resources = collect(cs.Resources(ctx, nil), "resources/list", &errs)
		cat.Templates = collect(cs.ResourceTemplates(ctx, nil), "resources/templates/list", &errs)
	}
	if caps.Prompts != nil {
		cat.Prompts = collect(cs.Prompts(ctx, nil), "prompts/list", &errs)
	}
	u.mu.Lock()
	u.catalog = cat
	u.mu.Unlock()
	u.log.Debug("upstream catalog", "tools", len(cat.Tools), "resources", len(cat.Resources),
		"templates", len(cat.Templates), "prompts", len(cat.Prompts))
	if u.onCatalog != nil {
		u.onCatalog(u)
	}
	return errors.Join(errs...)
}

// collect drains a paginated list, recording the first error under what.
func collect[T any](seq iter.Seq2[T, error], what string, errs *[]error) []T {
	var out []T
	for v, err := range seq {
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", what, err))
			break
		}
		out = append(out, v)
	}
	return out
}

// controlConn returns the live control session or an error naming the
// upstream.
func (u *upstream) controlConn() (*upstreamConn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.control == nil {
		return nil, u.unavailableLocked()
	}
	return u.control, nil
}

func (u *upstream) unavailableLocked() error {
	reason := u.health.State
	if u.agentErr != "" {
		reason = u.agentErr
	}
	return &UnavailableError{Upstream: u.cfg.Name, Reason: reason}
}

// UnavailableError reports that an upstream cannot serve a request.
type UnavailableError struct {
	Upstream string
	Reason   string
	// Sent: the connection failed after the request had gone out, so the
	// upstream may have acted on it (the gateway does not send it again).
	Sent bool
}

func (e *UnavailableError) Error() string {
	if e.Sent {
		return fmt.Sprintf("upstream %q is unavailable: %s; the request had been sent, so the upstream may have acted on it (not sent again)", e.Upstream, e.Reason)
	}
	return fmt.Sprintf("upstream %q is unavailable: %s", e.Upstream, e.Reason)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lineLogger logs each line a stdio upstream writes to stderr.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a line without end: log what we have
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineLogger) emit(line []byte) {
	if len(line) > 0 {
		l.log.Info("upstream stderr", "line", string(line))
	}
}

var _ io.Writer = (*lineLogger)(nil)
