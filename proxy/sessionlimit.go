package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// sessionRetryAfter is what a refused new session is told to wait.
const sessionRetryAfter = 30 * time.Second

// sessionCounter counts live agent sessions, in all and per agent, for
// limits.max_sessions and limits.max_sessions_per_agent. A session counts
// from its initialize until it ends.
type sessionCounter struct {
	mu     sync.Mutex
	total  int
	per    map[string]int                   // agent -> live sessions
	of     map[*mcp.ServerSession]sessionOf // session -> whose, where
	logged time.Time                        // rate limit for refusal warnings
	gauge  *prometheus.GaugeVec             // gatehouse_sessions{vs}
}

// sessionOf is the agent and virtual server of a counted session.
type sessionOf struct{ agent, vs string }

func newSessionCounter(gauge *prometheus.GaugeVec) *sessionCounter {
	return &sessionCounter{per: map[string]int{}, of: map[*mcp.ServerSession]sessionOf{}, gauge: gauge}
}

// sessionLimitError says which limit a new session would pass.
type sessionLimitError struct {
	limit string // the setting, e.g. "limits.max_sessions"
	msg   string
}

func (e *sessionLimitError) Error() string { return e.msg }

// admit returns nil if agent may open another session under l, else the
// limit it would pass. Sessions initializing at the same time may each be
// admitted, so the live count can pass a limit by as many as are in
// flight.
func (c *sessionCounter) admit(agent string, l config.Limits) *sessionLimitError {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.total >= l.MaxSessions:
		return &sessionLimitError{"limits.max_sessions", fmt.Sprintf("the gateway has %d live agent sessions, its limit (limits.max_sessions)", c.total)}
	case l.MaxSessionsPerAgent > 0 && c.per[agent] >= l.MaxSessionsPerAgent:
		return &sessionLimitError{"limits.max_sessions_per_agent", fmt.Sprintf("agent %q has %d live sessions, the limit per agent (limits.max_sessions_per_agent)", agent, c.per[agent])}
	}
	return nil
}

// add counts ss, an initialized session of agent on virtual server vs;
// again is a no-op.
func (c *sessionCounter) add(ss *mcp.ServerSession, agent, vs string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.of[ss]; ok {
		return
	}
	c.of[ss] = sessionOf{agent, vs}
	c.per[agent]++
	c.total++
	c.gauge.WithLabelValues(vs).Inc()
}

// remove forgets ss, which ended.
func (c *sessionCounter) remove(ss *mcp.ServerSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.of[ss]
	if !ok {
		return
	}
	delete(c.of, ss)
	if c.per[o.agent]--; c.per[o.agent] == 0 {
		delete(c.per, o.agent)
	}
	c.total--
	c.gauge.WithLabelValues(o.vs).Dec()
}

// logRefusal reports whether a refusal should be logged now: the first,
// then at most one every 10 s.
func (c *sessionCounter) logRefusal() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.logged) < 10*time.Second {
		return false
	}
	c.logged = time.Now()
	return true
}

// opensSession reports whether r would open a new agent session: a
// legacy SSE stream (GET), or a streamable HTTP POST without a session ID
// from a client of a protocol version that has sessions (an initialize;
// from 2026-07-28 on, requests carry their version and need no session).
func opensSession(r *http.Request, legacySSE bool) bool {
	if legacySSE {
		return r.Method == http.MethodGet
	}
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
		return false
	}
	v := r.Header.Get("Mcp-Protocol-Version")
	return v == "" || v < "2026-07-28"
}

// refuseSession answers a request that would open a session past a limit
// with HTTP 429 and a JSON-RPC error -32054, as a rate limit does.
func (g *Gateway) refuseSession(w http.ResponseWriter, r *http.Request, vs string, why *sessionLimitError) {
	if g.sessions.logRefusal() {
		g.log.Warn("new agent sessions refused at the session limit (logged at most every 10 s)", "vs", clipName(vs), "remote", r.RemoteAddr, "reason", why.msg)
	}
	secs := int(sessionRetryAfter / time.Second)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": CodeRateLimited, "message": "too many sessions: " + why.msg + "; close sessions no longer used, or retry later",
			"data": map[string]any{"retryAfterSeconds": secs, "limit": why.limit}},
	})
}
