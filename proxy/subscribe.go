package proxy

import (
	"context"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// Resource subscriptions go over the upstream's control session, counted
// per URI: the upstream hears one subscribe however many agents watch a
// resource, and its one notifications/resources/updated reaches every
// subscribed agent through the face (the go-sdk tracks which sessions
// subscribed to what).
type subscriptions struct {
	mu sync.Mutex
	m  map[subKey]int
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
	if err := f.g.subs.acquire(ctx, f.g, k); err != nil {
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
		f.g.subs.release(ctx, f.g, k)
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

func (s *subscriptions) acquire(ctx context.Context, g *Gateway, k subKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k] == 0 {
		u := g.upstream(k.upstream)
		if u == nil {
			return unavailable(&UnavailableError{Upstream: k.upstream, Reason: "not configured"})
		}
		c, err := u.controlConn()
		if err != nil {
			return unavailable(err)
		}
		if err := c.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: k.uri}); err != nil {
			return err
		}
	}
	s.m[k]++
	return nil
}

func (s *subscriptions) release(ctx context.Context, g *Gateway, k subKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k] == 0 {
		return
	}
	s.m[k]--
	if s.m[k] > 0 {
		return
	}
	delete(s.m, k)
	if u := g.upstream(k.upstream); u != nil {
		if c, err := u.controlConn(); err == nil {
			_ = c.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: k.uri})
		}
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
