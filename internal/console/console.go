// Package console is Gatehouse's web console, served at /console/: an
// approvals inbox for approvers, an audit explorer for auditors, and
// read-only overview and configuration views for viewers and admins.
//
// # Design
//
// The console has no permission model of its own. Each page runs GraphQL
// operations in-process against the admin API handler (graph.NewHandler)
// with the signed-in admin's token as its bearer token, exactly as the
// GraphQL API would be called over HTTP: roles, field permissions, the
// transaction around mutations and the admin change log all apply
// unchanged. What the console hides (an Approve button a viewer may not
// press) it hides for clarity only; the API refuses the operation anyway.
// The audit export streams the auditors' /audit/export handler the same
// way, and the overview reads /readyz and /metrics from the gateway's own
// handler.
//
// Pages are rendered on the server with html/template from embedded
// templates; one small hand-written script (static/console.js) adds live
// updates to the approvals inbox by long-polling the approvalChanged query
// through the console. No framework, no build step, nothing loaded from
// elsewhere: every response carries a strict Content-Security-Policy
// (scripts, styles and connections to this origin only, no inline code).
//
// Sessions live in memory (session.go): the cookie carries a random
// session ID, never the token; a session ends after [DefaultIdleTimeout]
// without requests, after [DefaultMaxSessionAge] in any case, on sign-out,
// and when the API stops accepting its token. Every state-changing request
// carries the session's synchronizer CSRF token and must come from this
// origin (security.go).
package console

import (
	"log/slog"
	"net/http"
	"time"
)

// Defaults of [Options].
const (
	DefaultIdleTimeout   = 30 * time.Minute
	DefaultMaxSessionAge = 8 * time.Hour
)

// Options configures [New]. A nil *Options means all defaults.
type Options struct {
	// Audit is the auditors' HTTP handler (graph.NewAuditHandler), for
	// exports of the audit explorer's filter. Nil means the export links
	// answer 503.
	Audit http.Handler
	// Status is the gateway's operator handler serving GET /readyz and GET
	// /metrics (proxy.Gateway.Handler), for the overview's upstream health
	// and sessions. Nil means the overview shows neither.
	Status http.Handler
	// IdleTimeout ends a session after this long without a request. Zero
	// means [DefaultIdleTimeout].
	IdleTimeout time.Duration
	// MaxSessionAge ends a session this long after sign-in, however busy.
	// Zero means [DefaultMaxSessionAge].
	MaxSessionAge time.Duration
	// Logger receives sign-ins, sign-outs, decisions and refusals (never a
	// token). Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for sessions and time ranges. Nil means time.Now.
	Now func() time.Time
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.IdleTimeout <= 0 {
		r.IdleTimeout = DefaultIdleTimeout
	}
	if r.MaxSessionAge <= 0 {
		r.MaxSessionAge = DefaultMaxSessionAge
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r
}

// Console is the web console's HTTP handler; mount it at /console/.
type Console struct {
	api      *apiClient
	audit    http.Handler
	status   http.Handler
	sessions *sessionStore
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
}

var _ http.Handler = (*Console)(nil)

// New returns the console over the admin API handler graphql
// (graph.NewHandler, the same one served at /graphql). Mount it at
// /console/.
func New(graphql http.Handler, opts *Options) *Console {
	o := opts.withDefaults()
	c := &Console{
		api:      &apiClient{h: graphql},
		audit:    o.Audit,
		status:   o.Status,
		sessions: newSessionStore(o.IdleTimeout, o.MaxSessionAge, o.Now),
		log:      o.Logger,
		now:      o.Now,
		mux:      http.NewServeMux(),
	}
	c.routes()
	return c
}

// ServeHTTP sets the security headers every response carries, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET /console/static/", staticHandler())
	m.HandleFunc("GET /console/signin", c.signinPage)
	m.HandleFunc("POST /console/signin", c.signin)
	m.Handle("POST /console/signout", c.authed(c.signout))

	m.Handle("GET /console/{$}", c.authed(c.overview))
	m.Handle("GET /console/approvals", c.authed(c.approvalsInbox))
	m.Handle("GET /console/approvals/history", c.authed(c.approvalsHistory))
	m.Handle("GET /console/approvals/changes", c.authed(c.approvalsChanges))
	m.Handle("GET /console/approvals/{id}", c.authed(c.approvalDetail))
	m.Handle("POST /console/approvals/{id}/decide", c.authed(c.approvalDecide))
	m.Handle("GET /console/audit", c.authed(c.auditExplorer))
	m.Handle("GET /console/audit/export", c.authed(c.auditExport))
	m.Handle("GET /console/audit/event", c.authed(c.auditEvent))
	m.Handle("GET /console/config/virtual-servers", c.authed(c.configVirtualServers))
	m.Handle("GET /console/config/agents", c.authed(c.configAgents))
	m.Handle("GET /console/config/grants", c.authed(c.configGrants))
	m.Handle("GET /console/tools", c.authed(c.toolsReview))
	m.Handle("POST /console/tools/{id}/approve", c.authed(c.toolApprove))
	m.HandleFunc("/console/", c.notFound)
}
