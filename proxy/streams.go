package proxy

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// streamSet holds the agents' open event streams (the GET of streamable
// HTTP's listening stream, and legacy SSE's session stream), so that they
// end when their credentials stop being accepted: a revoked or expired API
// key, a deleted agent, an expired token. Requests authenticate one by
// one; a stream, once open, would otherwise go on delivering the session's
// notifications for as long as the agent keeps it.
type streamSet struct {
	mu sync.Mutex
	m  map[*openStream]struct{}
}

type openStream struct {
	r      *http.Request // re-authenticated as it was
	agent  string
	cancel context.CancelFunc
}

// streamRecheck is how often open streams are re-authenticated when no
// configuration change asks sooner, for credentials that expire by time.
const streamRecheck = 30 * time.Second

// track registers r, a GET that opens an event stream for p, and returns
// it with a context that ends when its credentials stop being accepted;
// done unregisters it.
func (s *streamSet) track(r *http.Request, p *identity.Principal) (_ *http.Request, done func()) {
	ctx, cancel := context.WithCancel(r.Context())
	r = r.WithContext(ctx)
	o := &openStream{r: r, agent: p.Agent, cancel: cancel}
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*openStream]struct{}{}
	}
	s.m[o] = struct{}{}
	s.mu.Unlock()
	return r, func() {
		s.mu.Lock()
		delete(s.m, o)
		s.mu.Unlock()
		cancel()
	}
}

func (s *streamSet) list() []*openStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*openStream, 0, len(s.m))
	for o := range s.m {
		out = append(out, o)
	}
	return out
}

// recheckStreams ends the open streams whose credentials the snapshot in
// force (and the process's authenticators) no longer accept, or accept
// for another agent.
func (g *Gateway) recheckStreams() {
	snap := g.snap.Load()
	if snap == nil {
		return
	}
	for _, o := range g.streams.list() {
		p, err := g.authenticate(o.r, snap)
		reason := ""
		switch {
		case err != nil:
			reason = authHint(err)
		case p.Agent != o.agent:
			reason = "the credentials now belong to agent " + p.Agent
		default:
			continue
		}
		g.log.Info("agent event stream closed: its credentials are no longer accepted", "agent", o.agent, "reason", reason)
		o.cancel()
	}
}

// watchStreams rechecks open streams every streamRecheck until ctx ends.
func (g *Gateway) watchStreams(ctx context.Context) {
	t := time.NewTicker(streamRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.recheckStreams()
		}
	}
}
