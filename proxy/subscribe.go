package proxy

import (
	"context"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// Resource subscriptions go over the upstream's control session, counted
// per URI: the upstream hears one subscribe however many agents watch a
// resource, and its one notifications/resources/updated reaches every
// subscribed agent through the face (the go-sdk tracks which sessions
// subscribed to what).
//
// The upstream is called outside the lock, so an upstream slow to answer
// holds up only the agents subscribing to its resource. Calls for one key
// are ordered: agents that come while its subscribe is out wait for that
// answer, and a subscribe that comes while its unsubscribe is out waits
// for that to finish, so the upstream never ends unsubscribed from a
// resource an agent holds.
type subscriptions struct {
	mu sync.Mutex
	m  map[subKey]*subEntry
}

// subEntry is one key's upstream subscription.
type subEntry struct {
	n       int           // agent sessions holding it (or waiting for it)
	ready   chan struct{} // closed once the upstream answered the subscribe
	err     error         // the subscribe's error, set before ready closes
	closing chan struct{} // set while the unsubscribe is out; closed after it
}

type subKey struct{ upstream, uri string }

// subscribe decides like resources/read: a resource the agent may not
// see is not found, one it may not read is denied, and only then does the
// upstream hear of it (and the agent's session get its updates).
func (f *face) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	vs, err := f.vs()
	if err != nil {
		return err
	}
	up, err := f.checkResource(ctx, req, vs, req.Params.URI)
	if err != nil {
		return err
	}
	k := subKey{up, req.Params.URI}
	as := f.g.agentFor(req.Session, f.name, principalOf(req))
	if !as.holdSub(k) {
		return nil // already subscribed: the SDK keeps one entry per session
	}
	if err := f.g.subs.acquire(ctx, f.g, k, func() bool { return as.dropSub(k) }); err != nil {
		as.dropSub(k)
		return err
	}
	return nil
}

func (f *face) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	k, err := f.subKey(req.Params.URI)
	if err != nil {
		return err
	}
	if f.g.agentFor(req.Session, f.name, principalOf(req)).dropSub(k) {
		f.g.subs.release(f.g, k)
	}
	return nil
}

// holdSub records that the agent session subscribed to k; it reports
// false if it already had. Subscriptions still held when the session
// ends are released (the go-sdk forgets them without telling handlers).
func (as *agentSession) holdSub(k subKey) bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.subs == nil {
		as.subs = map[subKey]bool{}
	}
	if as.subs[k] {
		return false
	}
	as.subs[k] = true
	return true
}

// dropSub forgets k and reports whether the session held it.
func (as *agentSession) dropSub(k subKey) bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	held := as.subs[k]
	delete(as.subs, k)
	return held
}

// subKey finds the upstream serving uri in this virtual server.
func (f *face) subKey(uri string) (subKey, error) {
	vs, err := f.vs()
	if err != nil {
		return subKey{}, err
	}
	up, ok := vs.resourceUpstream(uri)
	if !ok {
		return subKey{}, mcp.ResourceNotFoundError(uri)
	}
	return subKey{up, uri}, nil
}

// acquire holds k for one agent session, subscribing the upstream if no
// session held it. The upstream's subscribe runs on its own, bounded by
// the upstream's timeout: an agent that stops waiting for it leaves it to
// those still waiting. abandon is called then; it reports whether the
// session still held k (its session may have ended meanwhile and released
// it already), and only then is the hold given back here.
func (s *subscriptions) acquire(ctx context.Context, g *Gateway, k subKey, abandon func() bool) error {
	for {
		s.mu.Lock()
		e := s.m[k]
		switch {
		case e == nil:
			e = &subEntry{n: 1, ready: make(chan struct{})}
			s.m[k] = e
			go s.subscribe(context.WithoutCancel(ctx), g, k, e)
		case e.closing != nil:
			closing := e.closing
			s.mu.Unlock()
			select {
			case <-closing:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			e.n++
		}
		s.mu.Unlock()
		select {
		case <-e.ready:
			return e.err
		case <-ctx.Done():
			if abandon() {
				s.drop(g, k, e)
			}
			return ctx.Err()
		}
	}
}

// subscribe asks the upstream for the entry's subscription and settles the
// entry with its answer.
func (s *subscriptions) subscribe(ctx context.Context, g *Gateway, k subKey, e *subEntry) {
	err := func() error {
		u := g.upstream(k.upstream)
		if u == nil {
			return unavailable(&UnavailableError{Upstream: k.upstream, Reason: "not configured"})
		}
		c, err := u.controlConn()
		if err != nil {
			return unavailable(err)
		}
		ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout.Std())
		defer cancel()
		err = c.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: k.uri})
		switch werr := upstreamError(err); {
		case err == nil:
			return nil
		case werr != nil:
			return werr // the upstream's own answer
		case ctx.Err() == context.DeadlineExceeded:
			return &jsonrpc.Error{Code: CodeUpstreamTimeout,
				Message: fmt.Sprintf("upstream %q did not answer resources/subscribe within %s", k.upstream, u.cfg.Timeout.Std()),
				Data:    upstreamData(k.upstream)}
		}
		u.markSuspect()
		return unavailable(&UnavailableError{Upstream: k.upstream, Reason: cleanErr(err), Sent: true})
	}()
	s.mu.Lock()
	e.err = err
	close(e.ready)
	switch {
	case err != nil:
		// Those waiting get the error and hold nothing.
		delete(s.m, k)
		s.mu.Unlock()
	case e.n == 0:
		// Every session that held it let go while the subscribe was out.
		s.closeLocked(g, k, e)
	default:
		s.mu.Unlock()
	}
}

// release lets go of k for one agent session, unsubscribing the upstream
// when it was the last.
func (s *subscriptions) release(g *Gateway, k subKey) {
	s.mu.Lock()
	e := s.m[k]
	if e == nil || e.closing != nil {
		s.mu.Unlock()
		return
	}
	s.releaseLocked(g, k, e)
}

// drop lets go of e for one session that stopped waiting for it.
func (s *subscriptions) drop(g *Gateway, k subKey, e *subEntry) {
	s.mu.Lock()
	if s.m[k] != e || e.closing != nil {
		s.mu.Unlock() // it failed meanwhile and holds nothing
		return
	}
	s.releaseLocked(g, k, e)
}

// releaseLocked is called with s.mu held and releases it.
func (s *subscriptions) releaseLocked(g *Gateway, k subKey, e *subEntry) {
	if e.n > 0 {
		e.n--
	}
	if e.n > 0 {
		s.mu.Unlock()
		return
	}
	select {
	case <-e.ready:
		s.closeLocked(g, k, e)
	default:
		s.mu.Unlock() // the subscribe is still out; subscribe closes it
	}
}

// closeLocked is called with s.mu held and releases it: it unsubscribes
// the upstream from k (within the upstream's timeout, whoever asked) and
// then forgets the entry.
func (s *subscriptions) closeLocked(g *Gateway, k subKey, e *subEntry) {
	e.closing = make(chan struct{})
	s.mu.Unlock()
	if u := g.upstream(k.upstream); u != nil {
		if c, err := u.controlConn(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), u.cfg.Timeout.Std())
			if err := c.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: k.uri}); err != nil {
				g.log.Warn("unsubscribe upstream", "upstream", k.upstream, "error", err)
			}
			cancel()
		}
	}
	s.mu.Lock()
	if s.m[k] == e {
		delete(s.m, k)
	}
	close(e.closing)
	s.mu.Unlock()
}

// renew subscribes a new control session of u (the upstream restarted or
// its session was lost, and with it what it was subscribed to) to every
// resource of u that agents hold, so their updates keep coming. Each
// subscribe is bounded by the upstream's timeout; one that fails is logged
// and left (the agents still hold it; an unsubscribe releases it as usual).
// URIs are not logged: they may carry what guardrails redact.
func (s *subscriptions) renew(ctx context.Context, u *upstream, conn *upstreamConn) {
	s.mu.Lock()
	var uris []string
	for k, e := range s.m {
		if k.upstream == u.name() && e.closing == nil && e.settled() {
			uris = append(uris, k.uri)
		}
	}
	s.mu.Unlock()
	failed := 0
	for _, uri := range uris {
		cctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout.Std())
		err := conn.cs.Subscribe(cctx, &mcp.SubscribeParams{URI: uri})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failed++
			u.log.Warn("renew resource subscription", "error", cleanErr(err))
		}
	}
	if len(uris) > 0 {
		u.log.Info("renewed resource subscriptions on a new upstream session", "subscriptions", len(uris), "failed", failed)
	}
}

// settled reports whether the entry's upstream subscribe answered, and
// without an error.
func (e *subEntry) settled() bool {
	select {
	case <-e.ready:
		return e.err == nil
	default:
		return false
	}
}

// resourceUpdated relays an upstream's resource update to every face that
// exposes the resource from that upstream.
func (g *Gateway) resourceUpdated(ctx context.Context, upstream string, p *mcp.ResourceUpdatedNotificationParams) {
	snap := g.snap.Load()
	if snap == nil {
		return
	}
	for name, vs := range snap.VS {
		if up, ok := vs.resourceUpstream(p.URI); ok && up == upstream {
			if f := g.face(name); f != nil {
				_ = f.server.ResourceUpdated(ctx, p)
			}
		}
	}
}

func templateMatches(tmpl, uri string) bool {
	t, err := uritemplate.New(tmpl)
	if err != nil {
		return false
	}
	return t.Regexp().MatchString(uri)
}
