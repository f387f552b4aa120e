package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// principalKey is where the principal travels in the go-sdk's TokenInfo.
const (
	principalKey = "gatehouse.principal"
	// remoteKey carries the agent's IP address, for policy conditions.
	remoteKey = "gatehouse.remote"
)

// Handler returns the gateway's HTTP surface:
//
//	/mcp/{vs}   MCP streamable HTTP (POST, GET, DELETE)
//	/sse/{vs}   legacy HTTP+SSE transport (GET opens the stream, POST sends)
//	/healthz    liveness
//	/readyz     readiness and per-upstream health (JSON)
//	/metrics    Prometheus metrics
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp/{vs}", g.serveMCP(false))
	mux.HandleFunc("/sse/{vs}", g.serveMCP(true))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// serveMCP authenticates, applies limits and Host/Origin checks, then hands
// the request to the virtual server's go-sdk handler.
func (g *Gateway) serveMCP(legacySSE bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			g.posts.Add(1) // see Drain
			defer g.posts.Add(-1)
		}
		snap := g.snap.Load()
		if snap == nil {
			if g.ConfigError() != nil {
				httpError(w, http.StatusServiceUnavailable, "no configuration in force: the stored configuration does not apply (see /readyz)")
				return
			}
			httpError(w, http.StatusServiceUnavailable, "gateway is starting")
			return
		}
		name := r.PathValue("vs")
		if reason := g.checkHostOrigin(r); reason != "" {
			g.log.Warn("request rejected", "vs", name, "remote", r.RemoteAddr, "reason", reason)
			httpError(w, http.StatusForbidden, reason)
			return
		}
		vs := snap.VS[name]
		f := g.face(name)
		if vs == nil || f == nil {
			// Which names exist is not told to a caller without
			// credentials: it gets what a virtual server without
			// anonymous access answers.
			if _, err := g.authenticate(r, snap); err != nil {
				g.unauthorized(w, r, name, err)
				return
			}
			msg := fmt.Sprintf("no virtual server %q", name)
			if g.ConfigError() != nil {
				msg += "; the stored configuration does not apply (see /readyz), so the gateway may be serving an older one"
			}
			httpError(w, http.StatusNotFound, msg)
			return
		}
		limit := snap.Doc.Limits.MaxBodyBytes
		if r.ContentLength > limit {
			writeTooLarge(w, limit)
			return
		}
		if r.Method == http.MethodPost && r.ContentLength < 0 {
			// A body of unknown length (chunked) is read here, so that one
			// over the limit gets the same JSON-RPC answer.
			b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				httpError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
				return
			}
			if int64(len(b)) > limit {
				writeTooLarge(w, limit)
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		authStart := time.Now()
		p, err := g.authenticate(r, snap)
		r = r.WithContext(context.WithValue(r.Context(), authDurKey{}, time.Since(authStart)))
		switch {
		case err == nil:
		case errors.Is(err, identity.ErrNoCredentials) && vs.Anonymous:
			p = identity.Anonymous
		default:
			g.unauthorized(w, r, name, err)
			return
		}
		if opensSession(r, legacySSE) {
			if why := g.sessions.admit(p.Agent, snap.Doc.Limits); why != nil {
				g.refuseSession(w, r, name, why)
				return
			}
		}
		if r.Method == http.MethodGet && p != identity.Anonymous {
			var done func()
			r, done = g.streams.track(r, p)
			defer done()
		}
		r = r.WithContext(identity.WithPrincipal(r.Context(), p))
		if p != identity.Anonymous && r.Header.Get("Authorization") == "" {
			// A principal from a client certificate: the go-sdk binds
			// sessions through a bearer token's TokenInfo, so give it a
			// placeholder it hands to principalVerifier (which ignores the
			// token and takes the principal from the context). The header
			// goes no further than this process.
			r.Header.Set("Authorization", "Bearer mtls")
		}
		if p == identity.Anonymous {
			if legacySSE {
				f.sse.ServeHTTP(w, r)
			} else {
				f.streamable.ServeHTTP(w, r)
			}
			return
		}
		if legacySSE {
			f.sseAuthed.ServeHTTP(w, r)
		} else {
			f.streamableAuthed.ServeHTTP(w, r)
		}
	}
}

// unauthorized answers a request for virtual server vs whose credentials
// are missing or bad (err) with 401 and the challenge.
func (g *Gateway) unauthorized(w http.ResponseWriter, r *http.Request, vs string, err error) {
	g.log.Warn("authentication failed", "vs", clipName(vs), "remote", r.RemoteAddr, "reason", err.Error())
	if g.resource != "" {
		w.Header().Set("WWW-Authenticate", identity.WWWAuthenticate(g.resource, r.URL.Path, err))
	} else {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="gatehouse", error="invalid_token", error_description=%q`, authHint(err)))
	}
	httpError(w, http.StatusUnauthorized, authHint(err))
}

// authenticate finds the principal of r: the process's authenticators
// (OIDC, which passes on bearers that are not JWTs; client certificates,
// which pass when none was presented) first, then the snapshot's API keys.
// The first that recognizes the credentials decides.
func (g *Gateway) authenticate(r *http.Request, snap *Snapshot) (*identity.Principal, error) {
	for _, a := range g.auth {
		p, err := a.Authenticate(r.Context(), r)
		if !errors.Is(err, identity.ErrNoCredentials) {
			return p, err
		}
	}
	return snap.Keys.Authenticate(r.Context(), r)
}

// authHint says what was wrong with the credentials, without echoing them:
// API-key failures in their own words, OIDC and certificate failures by the
// fixed reasons those authenticators give.
func authHint(err error) string {
	switch {
	case errors.Is(err, identity.ErrNoCredentials):
		return "authentication required: send Authorization: Bearer <api key or token>"
	case err == identity.ErrInvalidCredentials:
		return "invalid api key"
	case errors.Is(err, identity.ErrKeyExpired):
		return "api key expired"
	}
	return identity.Public(err)
}

// principalVerifier hands the principal found by serveMCP to the go-sdk as
// TokenInfo, which binds each session to its agent: a session id presented
// with another agent's key is refused by the SDK.
func principalVerifier(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
	p := identity.FromContext(ctx)
	if p == nil {
		return nil, auth.ErrInvalidToken
	}
	extra := map[string]any{principalKey: p, remoteKey: remoteIP(r)}
	if d, ok := ctx.Value(authDurKey{}).(time.Duration); ok {
		extra[authDurExtra] = d
	}
	return &auth.TokenInfo{UserID: p.Agent, Extra: extra}, nil
}

// authDurKey carries how long authenticating the HTTP request took, to
// TokenInfo (authDurExtra) and from there to the request's audit event.
type authDurKey struct{}

const authDurExtra = "gatehouse.auth_duration"

// remoteIP is the agent's address without the port.
func remoteIP(r *http.Request) string {
	if r == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// wireHTTP creates the face's go-sdk HTTP handlers.
func (f *face) wireHTTP(maxBody int64, sessionTimeout time.Duration) {
	store := mcp.NewMemoryEventStore(nil)
	f.streamable = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return f.server }, &mcp.StreamableHTTPOptions{
		Logger:              f.g.log.With("vs", f.name),
		EventStore:          store,
		SessionTimeout:      sessionTimeout,
		MaxRequestBodyBytes: maxBody,
		// Host and Origin are checked by the gateway against its own,
		// configurable allow-list.
		DisableLocalhostProtection: true,
	})
	f.sse = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return f.server }, &mcp.SSEOptions{
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        maxBody,
	})
	authed := auth.RequireBearerToken(principalVerifier, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
	f.streamableAuthed = authed(f.streamable)
	f.sseAuthed = authed(f.sse)
}

// checkHostOrigin defends against DNS rebinding and cross-site requests. It
// returns a reason when the request must be refused.
//
// Host: a gateway listening on loopback accepts only loopback names and the
// configured allowed_hosts; on other addresses, allowed_hosts (when set)
// is enforced. Origin: browsers send it; it must be same-origin with Host
// or listed in allowed_origins. Agents that send no Origin are unaffected.
func (g *Gateway) checkHostOrigin(r *http.Request) string {
	snap := g.snap.Load()
	hc := snap.Doc.HTTP
	if !slices.Contains(hc.AllowedHosts, "*") {
		loopbackListen := isLoopbackHost(hostOnly(snap.Doc.Listen))
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && local != nil && isLoopbackHost(hostOnly(local.String())) {
			loopbackListen = true
		}
		allowed := slices.ContainsFunc(hc.AllowedHosts, func(h string) bool { return strings.EqualFold(h, r.Host) || strings.EqualFold(h, hostOnly(r.Host)) })
		if loopbackListen && !allowed && !isLoopbackHost(hostOnly(r.Host)) {
			return fmt.Sprintf("host %q is not allowed (DNS rebinding protection; add it to http.allowed_hosts)", r.Host)
		}
		if !loopbackListen && len(hc.AllowedHosts) > 0 && !allowed {
			return fmt.Sprintf("host %q is not allowed (http.allowed_hosts)", r.Host)
		}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	if slices.Contains(hc.AllowedOrigins, origin) {
		return ""
	}
	if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
		return ""
	}
	return fmt.Sprintf("origin %q is not allowed (add it to http.allowed_origins)", origin)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && ip.IsLoopback()
}

// writeTooLarge answers an oversized request with 413 and a JSON-RPC error
// body, so both HTTP-level and JSON-RPC-level clients see why.
func writeTooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": -32600, "message": fmt.Sprintf("request body exceeds the limit of %d bytes (limits.max_body_bytes)", limit)},
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// Readiness is the /readyz document.
type Readiness struct {
	Status   string `json:"status"` // ok | degraded | starting
	Revision int64  `json:"revision"`
	Error    string `json:"error,omitempty"`
	// ConfigError says why the latest stored configuration is not in
	// force (the running one is kept).
	ConfigError string `json:"config_error,omitempty"`
	// ConfigStore says the config store does not answer: "unreachable
	// since TIME, serving store revision N: REASON". The running
	// configuration stays in force; admin API writes fail meanwhile.
	ConfigStore string            `json:"config_store,omitempty"`
	Upstreams   map[string]Health `json:"upstreams"`
	// QuarantinedTools are withheld by pinning until an admin approves
	// their definition (GraphQL approveToolDefinition).
	QuarantinedTools []Quarantined `json:"quarantined_tools,omitempty"`
	// Shadowing reports tool names that imitate other tools' names.
	Shadowing []string `json:"shadowing,omitempty"`
	// Collisions are names that upstreams' answers gave more than one
	// item of a virtual server while serving, and what agents get of each
	// (the route in force, if there was one; the rest is withheld). The
	// gateway is degraded until the configuration excludes or renames
	// one.
	Collisions []string `json:"collisions,omitempty"`
	// Approvals is the state of approval workflows: "ready", "off", or
	// "unavailable: REASON" (calls that need approval then fail with
	// -32056; other calls are unaffected).
	Approvals string `json:"approvals"`
	// Vault is the state of the secrets backend: "ready", "off" (none
	// configured), or "unavailable: REASON" (requests that need a secret
	// then fail with -32057 naming the binding; others are unaffected).
	Vault string `json:"vault"`
	// OIDC is, by provider, whether agents' tokens can be verified:
	// "ready", or "unavailable: …" (its signing keys could not be loaded:
	// its agents get 401 until they are; the gateway retries).
	OIDC map[string]string `json:"oidc,omitempty"`
	// Audit is the state of the audit trail: "ok", "off", "shipping
	// failed: …" (events wait in the spool; nothing is lost) or
	// "refusing: …" (the spool is at its budget: new requests fail with
	// -32058).
	Audit string `json:"audit"`
}

// degrade marks a ready gateway degraded (a starting one stays starting).
func (rd *Readiness) degrade() {
	if rd.Status == "ok" {
		rd.Status = "degraded"
	}
}

func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	rd := Readiness{Status: "ok", Upstreams: g.UpstreamHealth()}
	code := http.StatusOK
	if snap := g.snap.Load(); snap == nil {
		rd.Status, code = "starting", http.StatusServiceUnavailable
	} else {
		rd.Revision = snap.Revision
		rd.QuarantinedTools = snap.Quarantined()
		rd.Shadowing = snap.Shadowing()
		for _, c := range snap.Collisions() {
			rd.Collisions = append(rd.Collisions, c.Withheld())
		}
		if len(rd.Collisions) > 0 {
			rd.degrade()
		}
	}
	if err := g.LastError(); err != nil {
		rd.Error = err.Error()
		rd.degrade()
	}
	if err := g.ConfigError(); err != nil {
		rd.ConfigError = err.Error()
		rd.degrade()
	}
	if err := g.storeError(); err != nil {
		rd.ConfigStore = err.Error()
		rd.degrade()
	}
	for _, h := range rd.Upstreams {
		if h.State != StateReady && h.State != StateDisabled {
			rd.degrade()
		}
	}
	for _, a := range g.auth {
		st, ok := a.(interface{ Status() map[string]string })
		if !ok {
			continue
		}
		for name, state := range st.Status() {
			if rd.OIDC == nil {
				rd.OIDC = map[string]string{}
			}
			rd.OIDC[name] = state
			if state != "ready" {
				rd.degrade()
			}
		}
	}
	rd.Approvals = "off"
	if a := g.approvals; a != nil {
		rd.Approvals = "ready"
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		if err := a.Ready(ctx); err != nil {
			rd.Approvals = "unavailable: " + err.Error()
			rd.degrade()
		}
		cancel()
	}
	rd.Audit = "off"
	if g.audit != nil {
		if rd.Audit = g.audit.Status(); rd.Audit != "ok" {
			rd.degrade()
		}
	}
	rd.Vault = "off"
	if g.vault != nil {
		rd.Vault = "ready"
		if err := g.vault.Ready(); err != nil {
			rd.Vault = "unavailable: " + err.Error()
			rd.degrade()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rd)
}
