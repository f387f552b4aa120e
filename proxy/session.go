package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// agentSession is the gateway's state for one agent session on one virtual
// server: who the agent is, and the upstream sessions opened on its behalf.
//
// An HTTP upstream gets one upstream session per agent session, dialed on
// first use and closed with the agent session, so that everything the MCP
// spec scopes to a session (logging level, server-to-client requests,
// progress) reaches exactly this agent. A stdio upstream has a single
// session shared by all agents; what it sends back is routed by progress
// token or to the agent whose request is in flight.
type agentSession struct {
	g         *Gateway
	vs        string
	ss        *mcp.ServerSession
	principal *identity.Principal

	// sessionless marks an agent speaking protocol 2026-07-28 or later:
	// every request stands alone (the go-sdk gives each its own ephemeral
	// session), so requests use the upstream's pooled session instead of
	// a bound one.
	sessionless bool

	mu       sync.Mutex
	subs     map[subKey]bool  // resource subscriptions held
	slots    map[string]*slot // by upstream name
	logLevel mcp.LoggingLevel
	closed   bool
	// leases holds the session's session-scoped secret leases; procs stop
	// the stdio processes started on them. Both end with the session.
	leases *secrets.Session
	procs  []func()
}

// slot serializes dialing one upstream for one agent session.
type slot struct {
	mu   sync.Mutex
	conn *upstreamConn
}

// upstreamConn is one go-sdk client session to an upstream, plus the
// requests currently forwarded over it.
type upstreamConn struct {
	up      *upstream
	agent   *agentSession // nil for the control session
	control bool
	client  *mcp.Client
	cs      *mcp.ClientSession
	// leases are the secret leases the connection holds for its life;
	// cred is set on a stdio process started for one credential (the
	// credential's key).
	leases *secrets.Session
	in     *secrets.Injection
	cred   string

	mu      sync.Mutex
	flights []*flight
	// busy lives while any request is in flight on the connection; idle
	// ends it. See relayFor.
	busy context.Context
	idle context.CancelFunc
	// ended is set, and onEnd run, when the upstream session ends: the
	// client's SessionEnded runs sessionEnded (see dial), which ends the
	// connection once for every interested party.
	ended        bool
	onEnd        []func()
	sessionEnded func()
}

// whenEnded runs f when the upstream session ends, or now if it has.
func (c *upstreamConn) whenEnded(f func()) {
	c.mu.Lock()
	if !c.ended {
		c.onEnd = append(c.onEnd, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

// end marks the session ended and runs what waits for that.
func (c *upstreamConn) end() {
	c.mu.Lock()
	c.ended = true
	fs := c.onEnd
	c.onEnd = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// flight is one agent request being forwarded. Its ctx belongs to the
// agent's request, so messages sent with it travel on that request's stream.
type flight struct {
	agent *agentSession
	ctx   context.Context
	// over is set once the upstream has answered.
	over atomic.Bool
}

// relay returns the flight to relay something from the upstream for, on
// f's behalf, cancelled with cancel.
//
// Its context carries f's values, which make the go-sdk send on the
// agent's request stream, only while f is in flight; afterwards it carries
// none, and the go-sdk sends on the agent's standalone stream. The go-sdk
// looks the values up when it writes, so a relay racing the end of f is
// not sent to a stream already closed (and dropped).
//
// Messages do arrive after the answer: the go-sdk client hands an
// upstream's response to its caller at once but queues the notifications
// read before it for its handlers, so progress and log messages an
// upstream sent just before its result may be handled after forward has
// returned. They then reach the agent after the result, on its standalone
// stream (if it opened one), possibly out of order with those sent before.
func (f *flight) relay(cancel context.Context) *flight {
	return &flight{agent: f.agent, ctx: flightCtx{Context: cancel, f: f}}
}

// flightCtx is a context with the cancellation of the one it embeds and,
// while f is in flight, the values of f's (after it, none).
type flightCtx struct {
	context.Context
	f *flight
}

func (c flightCtx) Value(key any) any {
	if c.f.over.Load() {
		return nil
	}
	return c.f.ctx.Value(key)
}

func (c *upstreamConn) begin(f *flight) func() {
	c.mu.Lock()
	if len(c.flights) == 0 {
		c.busy, c.idle = context.WithCancel(context.Background())
	}
	c.flights = append(c.flights, f)
	c.mu.Unlock()
	return func() {
		f.over.Store(true)
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.flights {
			if x == f {
				c.flights = append(c.flights[:i], c.flights[i+1:]...)
				break
			}
		}
		if len(c.flights) == 0 && c.idle != nil {
			c.idle()
			c.idle = nil
		}
	}
}

// relayFor returns the flight to relay something for on a bound session,
// on behalf of f, the most recent request in flight. The go-sdk does not
// say which request an upstream's callback belongs to, so f may not be
// the request that caused it, and f may end first: the relay is cancelled
// only when no request is in flight on c any more. c.mu must be held.
func (c *upstreamConn) relayFor(f *flight) *flight {
	busy := c.busy
	if busy == nil {
		busy = context.Background()
	}
	return f.relay(busy)
}

// agentFor returns the gateway session state for ss, creating it on first
// use.
func (g *Gateway) agentFor(ss *mcp.ServerSession, vs string, p *identity.Principal) *agentSession {
	if p == nil {
		p = identity.Anonymous
	}
	if isSessionless(ss) {
		return &agentSession{g: g, vs: vs, ss: ss, principal: p, sessionless: true}
	}
	if v, ok := g.agents.Load(ss); ok {
		return v.(*agentSession)
	}
	as := &agentSession{g: g, vs: vs, ss: ss, principal: p, slots: map[string]*slot{}}
	if v, loaded := g.agents.LoadOrStore(ss, as); loaded {
		return v.(*agentSession)
	}
	if ss.Ended() {
		// The session ended while its first request ran: sessionEnded
		// may have come before the agent session was stored.
		g.sessionEnded(ss)
	}
	return as
}

// sessionEnded forgets the agent session of ss, whose connection has
// ended, and ends what it holds. It is the go-sdk server's SessionEnded
// (a goroutine of its own per ended session, not one per live session
// blocked until it ends), and agentFor calls it too for a session that
// ended while its first request ran; whichever comes second finds
// nothing.
func (g *Gateway) sessionEnded(ss *mcp.ServerSession) {
	g.sessions.remove(ss)
	v, ok := g.agents.LoadAndDelete(ss)
	if !ok {
		return
	}
	v.(*agentSession).close()
}

func (as *agentSession) close() {
	as.mu.Lock()
	as.closed = true
	slots := as.slots
	as.slots = map[string]*slot{}
	subs := as.subs
	as.subs = nil
	leases, procs := as.leases, as.procs
	as.procs = nil
	as.mu.Unlock()
	for _, stop := range procs {
		stop()
	}
	leases.Close()
	for k := range subs {
		as.g.subs.release(as.g, k)
	}
	for _, s := range slots {
		s.mu.Lock()
		if s.conn != nil {
			_ = s.conn.cs.Close()
			s.conn = nil
		}
		s.mu.Unlock()
	}
}

// connFor returns the upstream session for a request carrying in, and a
// func to call when the request is over. A request whose credential goes
// into a stdio process's environment gets that credential's own process.
func (as *agentSession) connFor(ctx context.Context, u *upstream, in *secrets.Injection) (*upstreamConn, func(), error) {
	if key := in.EnvKey(); key != "" && u.shared() {
		u.mu.Lock()
		same := key == u.controlEnv
		u.mu.Unlock()
		if !same {
			return u.credConn(ctx, in, as)
		}
	}
	c, err := as.conn(ctx, u.name())
	return c, func() {}, err
}

// upstreamAnsweredKey marks a request's context once the upstream has
// answered it (with a lost session): it is up, whatever its health says.
type upstreamAnsweredKey struct{}

// conn returns the upstream session to use for this agent.
func (as *agentSession) conn(ctx context.Context, name string) (*upstreamConn, error) {
	u := as.g.upstream(name)
	if u == nil {
		return nil, &UnavailableError{Upstream: name, Reason: "not configured"}
	}
	if u.shared() || as.sessionless {
		return u.controlConn()
	}
	as.mu.Lock()
	if as.closed {
		as.mu.Unlock()
		return nil, errors.New("session closed")
	}
	s := as.slots[name]
	if s == nil {
		s = new(slot)
		as.slots[name] = s
	}
	level := as.logLevel
	as.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, nil
	}
	// Fail fast while the supervisor knows the upstream is down, rather than
	// making every agent wait out a connect timeout; but not when the
	// upstream has just answered this request (see dispatch).
	if h := u.Health(); h.State != StateReady && ctx.Value(upstreamAnsweredKey{}) == nil {
		u.mu.Lock()
		err := u.unavailableLocked()
		u.mu.Unlock()
		return nil, err
	}
	// The session outlives this request: dial on the gateway's context.
	c, err := u.connect(as.g.ctx, as, false)
	var se *secrets.Error
	if errors.As(err, &se) {
		return nil, err // the upstream is fine; a secret is not
	}
	if err != nil {
		u.markSuspect()
		return nil, &UnavailableError{Upstream: name, Reason: cleanErr(err)}
	}
	if level != "" {
		if err := c.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: level}); err != nil {
			as.g.log.Debug("forward logging level", "upstream", name, "error", err)
		}
	}
	s.conn = c
	c.whenEnded(func() { as.drop(name, c) })
	return c, nil
}

// drop forgets c so the next request dials a fresh upstream session.
func (as *agentSession) drop(name string, c *upstreamConn) {
	as.mu.Lock()
	s := as.slots[name]
	as.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
	_ = c.cs.Close()
}

// bound returns the upstream sessions currently open for this agent.
func (as *agentSession) bound() []*upstreamConn {
	as.mu.Lock()
	slots := make([]*slot, 0, len(as.slots))
	for _, s := range as.slots {
		slots = append(slots, s)
	}
	as.mu.Unlock()
	var out []*upstreamConn
	for _, s := range slots {
		s.mu.Lock()
		if s.conn != nil {
			out = append(out, s.conn)
		}
		s.mu.Unlock()
	}
	return out
}

// progressTokens maps gateway-issued progress tokens back to the agent
// request that asked for progress. Tokens are rewritten on the way up so
// that two agents sharing one upstream session cannot collide.
type progressTokens struct {
	seq atomic.Uint64
	m   sync.Map // string -> *progressRoute
}

type progressRoute struct {
	flight *flight
	token  any
}

// progressLinger is how long a progress token stays routable after its
// request was answered, for notifications the go-sdk client handles after
// the response they preceded.
const progressLinger = 5 * time.Second

// rewrite replaces a progress token in meta with a fresh gateway token and
// returns the new meta (meta itself is not modified) and a release func.
// Released tokens stay routable for progressLinger.
func (p *progressTokens) rewrite(meta mcp.Meta, f *flight) (mcp.Meta, func()) {
	tok, ok := meta["progressToken"]
	if !ok || tok == nil {
		return meta, func() {}
	}
	id := "gh-" + strconv.FormatUint(p.seq.Add(1), 36)
	p.m.Store(id, &progressRoute{flight: f, token: tok})
	out := make(mcp.Meta, len(meta))
	for k, v := range meta {
		out[k] = v
	}
	out["progressToken"] = id
	return out, func() { time.AfterFunc(progressLinger, func() { p.m.Delete(id) }) }
}

func (p *progressTokens) lookup(tok any) (*progressRoute, bool) {
	s, ok := tok.(string)
	if !ok {
		return nil, false
	}
	v, ok := p.m.Load(s)
	if !ok {
		return nil, false
	}
	r := v.(*progressRoute)
	return &progressRoute{flight: r.flight.relay(context.Background()), token: r.token}, true
}

// relayTarget picks the agent and context for something an upstream sent
// on conn that is not tied to a progress token.
//
// On a bound session every message belongs to its one agent; the most
// recent request in flight (or, with none, the session's standalone
// stream) carries it. On a shared session the message is relayed only
// when exactly one request is in flight: guessing between agents could hand
// one agent's sampling request or log line to another.
func relayTarget(conn *upstreamConn) (*flight, error) {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.agent != nil {
		if n := len(conn.flights); n > 0 {
			return conn.relayFor(conn.flights[n-1]), nil
		}
		return &flight{agent: conn.agent, ctx: context.Background()}, nil
	}
	switch len(conn.flights) {
	case 1:
		f := conn.flights[0]
		return f.relay(f.ctx), nil
	case 0:
		return nil, fmt.Errorf("upstream %q sent a request while no agent request was in flight", conn.up.name())
	}
	return nil, fmt.Errorf("upstream %q sent a request while %d agent requests were in flight on its shared session; cannot tell which agent it is for", conn.up.name(), len(conn.flights))
}

// isSessionless reports whether ss speaks the sessionless protocol
// (2026-07-28 and later).
func isSessionless(ss *mcp.ServerSession) bool {
	if ss == nil {
		return true
	}
	ip := ss.InitializeParams()
	return ip != nil && ip.ProtocolVersion >= "2026-07-28"
}
