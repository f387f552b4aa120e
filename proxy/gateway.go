// Package proxy is Gatehouse's data path: the MCP endpoint agents connect
// to, the upstream MCP servers it fronts, virtual-server routing, and the
// decision pipeline every request passes.
//
// # Design
//
// Each virtual server has one long-lived go-sdk [mcp.Server], its "face".
// The face's feature set mirrors the virtual server's compiled catalog: every
// exposed tool, prompt, resource and template is registered with a handler
// that forwards to the upstream serving it. The go-sdk therefore does what
// it does well — sessions, version negotiation, pagination, list_changed
// notifications, resumable streams, multi-round-trip input — while the
// gateway decides routing, identity and policy.
//
// The data path reads an immutable [Snapshot] through an atomic pointer. A
// config reload, or an upstream announcing a changed list, compiles a new
// snapshot, swaps it in and syncs the faces (which notifies agents of list
// changes). Faces are never replaced, so live sessions survive every change.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/h2cork"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/secrets"
)

// Options configures a [Gateway]. The zero value is usable.
type Options struct {
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
	// Authenticators run after API keys (which the snapshot holds): OIDC
	// and mTLS, built by the caller from the process's auth settings.
	Authenticators []identity.Authenticator
	// Resource is the gateway's public base URL; a 401 points agents to
	// its protected resource metadata. Empty means none is advertised.
	Resource string
	// OnCatalog is called (on its own goroutine) with an upstream's tools
	// whenever its catalog is loaded or changes, e.g. to record them for
	// pinning. It must not block for long.
	OnCatalog func(upstream string, tools []*mcp.Tool)
	// HTTPClient is shared by all HTTP upstreams (one connection pool).
	// Nil means a client tuned for many concurrent upstream sessions.
	HTTPClient *http.Client
	// Audit stores an audit event of every agent request before it is
	// acknowledged; nil records none.
	Audit AuditSink
	// Secrets is the Vault client secret bindings are resolved with; nil
	// means no Vault, and requests that need a secret fail with
	// CodeSecretUnavailable.
	Secrets *secrets.Client
	// StartupWait bounds how long [Gateway.Start] waits for upstreams to
	// connect before compiling the first snapshot. Zero means the largest
	// upstream connect timeout.
	StartupWait time.Duration
}

// Gateway is the running data path.
type Gateway struct {
	log      *slog.Logger
	auth     []identity.Authenticator
	resource string
	onCat    func(string, []*mcp.Tool)
	limiter  *policy.Limiter
	metrics  *metrics
	// approvals holds calls that need approval; nil refuses them.
	approvals Approvals
	http      *http.Client
	h2c       *http.Client // for upstreams with h2c set; see h2cClient
	vault     *secrets.Client
	audit     AuditSink

	snap atomic.Pointer[Snapshot]
	rev  atomic.Int64

	mu        sync.Mutex // guards upstreams, faces, doc, lastErr
	doc       *config.Document
	upstreams map[string]*upstream
	faces     map[string]*face
	lastErr   error
	cfgErr    error // see SetConfigError
	storeErr  error // see SetStoreError
	keyUse    identity.KeyUse
	ctx       context.Context
	cancel    context.CancelFunc

	agents   sync.Map // *mcp.ServerSession -> *agentSession
	sessions *sessionCounter
	progress progressTokens
	subs     subscriptions
	startup  time.Duration
	idPrefix string
	reqSeq   atomic.Uint64

	// posts counts agent POSTs being served (a streamable HTTP POST's
	// handler returns once its answer is written) and handling the agent
	// messages in their handlers (a legacy SSE call runs after its POST
	// was answered), for [Gateway.Drain].
	posts, handling atomic.Int64
	// streams are the agents' open event streams, ended when their
	// credentials stop being accepted.
	streams streamSet
}

// New returns a gateway for doc. Call [Gateway.Start] to connect upstreams.
func New(doc *config.Document, opts *Options) *Gateway {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 1024
		tr.MaxIdleConnsPerHost = 256
		o.HTTPClient = &http.Client{Transport: tr}
	}
	g := &Gateway{
		log:       o.Logger,
		auth:      o.Authenticators,
		resource:  o.Resource,
		onCat:     o.OnCatalog,
		limiter:   policy.NewLimiter(),
		metrics:   newMetrics(),
		http:      o.HTTPClient,
		h2c:       h2cClient(o.HTTPClient),
		vault:     o.Secrets,
		audit:     o.Audit,
		doc:       doc,
		upstreams: map[string]*upstream{},
		faces:     map[string]*face{},
		startup:   o.StartupWait,
		idPrefix:  strconv.FormatInt(time.Now().UnixMilli(), 36) + "-",
	}
	g.subs.m = map[subKey]*subEntry{}
	g.sessions = newSessionCounter(g.metrics.sessions)
	g.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_requests_in_flight",
		Help: "Agent messages being handled (requests on their way through the gateway, held approvals included).",
	}, func() float64 { return float64(g.handling.Load()) }))
	return g
}

// Start connects every upstream, waits (bounded) for them to answer, and
// compiles the first snapshot. It fails if the configuration is invalid
// given what the reachable upstreams serve (a name collision, say);
// unreachable upstreams are not an error: they join when they come up.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// A binding that does not compile fails the first compile below, with
	// a clear error; until then its upstream gets none.
	bindings, _ := secrets.Compile(g.doc.SecretBindings)
	for _, uc := range g.doc.Upstreams {
		g.upstreams[uc.Name] = g.newUpstream(uc, bindings[uc.Name])
	}
	ups := g.sortedUpstreams()
	g.mu.Unlock()
	wait := g.startup
	if wait == 0 {
		wait = maxConnectTimeout(ups)
	}
	for _, u := range ups {
		u.start(g.ctx)
	}
	g.waitUpstreams(ctx, ups, wait)
	go g.watchStreams(g.ctx)
	return g.recompile(refuseCollisions)
}

// waitUpstreams returns when every enabled upstream has left the
// connecting state or wait has passed.
func (g *Gateway) waitUpstreams(ctx context.Context, ups []*upstream, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pending := 0
		for _, u := range ups {
			if h := u.Health(); h.State == StateConnecting || (h.State == StateReady && u.Catalog() == nil) {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Drain waits until no agent request is being served, so that calls in
// flight finish and deliver their answers before [Gateway.Close] ends the
// sessions, or until ctx ends. It returns how many were still running.
// Drain refuses nothing: a shutting-down server stops new connections, and
// what arrives on the open ones meanwhile (an agent's answer to a sampling
// request an in-flight call waits for) is served and waited for too.
func (g *Gateway) Drain(ctx context.Context) int64 {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	// The count must stay at zero for a few ticks: the legacy SSE
	// transport writes an answer to its stream just after the handler
	// (and so the count) is done with it.
	quiet := 0
	for {
		n := g.posts.Load() + g.handling.Load()
		if n == 0 {
			if quiet++; quiet == 5 {
				return 0
			}
		} else {
			quiet = 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
}

// Close stops all upstreams and closes all agent sessions.
func (g *Gateway) Close() {
	g.mu.Lock()
	ups := g.sortedUpstreams()
	faces := make([]*face, 0, len(g.faces))
	for _, f := range g.faces {
		faces = append(faces, f)
	}
	g.mu.Unlock()
	for _, f := range faces {
		f.closeSessions()
	}
	for _, u := range ups {
		u.stop()
	}
	if g.cancel != nil {
		g.cancel()
	}
}

// Snapshot returns the snapshot in force.
func (g *Gateway) Snapshot() *Snapshot { return g.snap.Load() }

// Apply replaces the configuration: upstreams that changed are restarted,
// new ones started, removed ones stopped; then the snapshot is recompiled
// and swapped. Agent sessions stay connected. If the new document does not
// compile — against the current catalogs, or against what new and changed
// upstreams turn out to serve — the old configuration stays in force,
// untouched, and the error is returned.
func (g *Gateway) Apply(doc *config.Document) error {
	// Compile against current catalogs first, so a document that is
	// already known to be bad starts nothing.
	next, bindings, err := g.check(doc)
	if err != nil {
		return err
	}

	// Start new and changed upstreams beside the running ones, and compile
	// again with what they serve: only then does the document replace the
	// running one.
	var started []*upstream
	for _, uc := range doc.Upstreams {
		if next[uc.Name] == nil {
			u := g.newUpstream(uc, bindings[uc.Name])
			next[uc.Name] = u
			started = append(started, u)
		}
	}
	for _, u := range started {
		u.start(g.ctx)
	}
	g.waitUpstreams(context.Background(), started, maxConnectTimeout(started))
	g.mu.Lock()
	old := g.upstreams
	err = g.swapLocked(doc, next, refuseNewCollisions)
	if err == nil {
		g.lastErr = nil
		for name, u := range next {
			bs := bindings[name]
			u.bindings.Store(&bs)
		}
	}
	g.mu.Unlock()
	if err != nil {
		for _, u := range started {
			go u.stop()
		}
		return err
	}
	for name, u := range old {
		if next[name] == u {
			continue
		}
		if next[name] == nil {
			g.metrics.upstreamUp.DeleteLabelValues(name)
		}
		go u.stop()
	}
	for _, u := range started {
		g.setUpGauge(u, u.Health())
		// What agents hold of the upstream it replaces (see onControl).
		if c, err := u.controlConn(); err == nil {
			go g.subs.renew(g.ctx, u, c)
		}
	}
	return nil
}

func maxConnectTimeout(ups []*upstream) time.Duration {
	var d time.Duration
	for _, u := range ups {
		d = max(d, u.cfg.ConnectTimeout.Std())
	}
	return d
}

func sameUpstream(a, b config.Upstream) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (g *Gateway) newUpstream(uc config.Upstream, bindings []*secrets.Binding) *upstream {
	u := &upstream{
		cfg:        uc,
		log:        g.log.With("upstream", uc.Name),
		httpClient: g.upstreamHTTPClient(uc),
		newClient:  g.newClient,
		vault:      g.vault,
		onCatalog: func(u *upstream) {
			g.recompileLogged()
			if g.onCat != nil {
				if cat := u.Catalog(); cat != nil {
					go g.onCat(u.name(), cat.Tools)
				}
			}
		},
		onControl: func(ctx context.Context, u *upstream, conn *upstreamConn) {
			// An upstream started by a reload renews once it is in force
			// (Apply); its control session is in place before this runs,
			// so one of the two sees the other.
			if g.upstream(u.name()) == u {
				g.subs.renew(ctx, u, conn)
			}
		},
		onState: func(u *upstream, h Health) {
			// An upstream started by a reload that is not (yet) in force
			// must not speak for the one of the same name that is.
			if g.upstream(u.name()) == u {
				g.setUpGauge(u, h)
			}
		},
	}
	u.bindings.Store(&bindings)
	return u
}

// sameEnv reports whether two binding sets give a stdio process the same
// environment, so its process may keep running across a change.
func sameEnv(a, b []*secrets.Binding) bool {
	env := func(bs []*secrets.Binding) []config.SecretBinding {
		var out []config.SecretBinding
		for _, b := range bs {
			if b.Injection == config.InjectEnv {
				out = append(out, b.SecretBinding)
			}
		}
		return out
	}
	return reflect.DeepEqual(env(a), env(b))
}

func (g *Gateway) setUpGauge(u *upstream, h Health) {
	v := 0.0
	if h.State == StateReady {
		v = 1
	}
	g.metrics.upstreamUp.WithLabelValues(u.name()).Set(v)
}

// upstreamHTTPClient returns the shared client (one connection pool),
// wrapped to add configured headers and the secrets a request's context
// carries.
func (g *Gateway) upstreamHTTPClient(uc config.Upstream) *http.Client {
	src := g.http
	if uc.H2C {
		src = g.h2c
	}
	c := *src
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if len(uc.Headers) > 0 {
		base = headerTransport{base: base, headers: uc.Headers}
	}
	c.Transport = secrets.Transport{Base: base}
	return &c
}

// h2cClient returns a client like c that speaks only cleartext HTTP/2
// with prior knowledge, for upstreams configured with h2c. Its pool is
// separate from c's: on it, one connection carries up to the server's
// stream limit of agent sessions (requests and event streams alike),
// where HTTP/1.1 holds a connection per open event stream.
func h2cClient(c *http.Client) *http.Client {
	var tr *http.Transport
	if t, ok := c.Transport.(*http.Transport); ok {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	// Every connection of this transport speaks h2c: h2cork sends each
	// request's HEADERS frame with its body's first DATA frame, one
	// write where net/http makes two.
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return h2cork.Client(conn), nil
	}
	out := *c
	out.Transport = tr
	return &out
}

type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.headers {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}

func (g *Gateway) upstream(name string) *upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.upstreams[name]
}

func (g *Gateway) sortedUpstreams() []*upstream {
	names := make([]string, 0, len(g.upstreams))
	for n := range g.upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*upstream, len(names))
	for i, n := range names {
		out[i] = g.upstreams[n]
	}
	return out
}

// recompileLogged follows a change in what an upstream serves. A name it
// now serves that another item of a virtual server has too is withheld
// (see [Collision]), and logged once.
func (g *Gateway) recompileLogged() {
	before := g.snap.Load()
	if err := g.recompile(withholdCollisions); err != nil {
		g.log.Error("configuration no longer compiles against what upstreams serve; keeping the previous snapshot", "error", err)
		return
	}
	var added []string
	for _, c := range g.snap.Load().Collisions() {
		if before == nil || !slices.ContainsFunc(before.Collisions(), c.same) {
			added = append(added, c.Withheld())
		}
	}
	if len(added) > 0 {
		g.log.Error("upstreams now serve the same name in a virtual server; the name keeps the route in force, if it had one, and the others are withheld until the configuration excludes or renames one",
			"collisions", strings.Join(added, "; "))
	}
}

// recompile compiles the current document against current catalogs, swaps
// the snapshot and syncs faces.
func (g *Gateway) recompile(p collisionPolicy) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.swapLocked(g.doc, g.upstreams, p)
	g.lastErr = err
	return err
}

// swapLocked compiles doc against the catalogs of ups and, if it compiles
// (collisions as p says), makes doc, ups and the new snapshot current and
// syncs faces. If it does not, nothing changes. g.mu must be held.
func (g *Gateway) swapLocked(doc *config.Document, ups map[string]*upstream, p collisionPolicy) error {
	cats := map[string]*Catalog{}
	for name, u := range ups {
		cats[name] = u.Catalog()
	}
	snap, err := compileAs(p, doc, cats, g.rev.Add(1), g.snap.Load())
	if err != nil {
		return err
	}
	snap.Keys.RecordUse(&g.keyUse)
	if err := g.limiter.Update(doc.RateLimits); err != nil {
		return err
	}
	// What an agent may see depends on the grants (and on who is an
	// agent): when they change, every session is told its lists changed.
	agentsChanged := g.doc != nil && !reflect.DeepEqual(g.doc.Agents, doc.Agents)
	regrant := agentsChanged || g.doc != nil && !reflect.DeepEqual(g.doc.Grants, doc.Grants)
	if agentsChanged {
		defer func() { go g.recheckStreams() }() // after the swap below
	}
	g.doc, g.upstreams = doc, ups
	g.snap.Store(snap)
	g.metrics.revision.Set(float64(snap.Revision))
	for name, vs := range snap.VS {
		f := g.faces[name]
		if f == nil {
			f = g.newFace(name, g.doc.Limits)
			g.faces[name] = f
		}
		f.sync(vs)
		if regrant {
			f.announceListsChanged(vs)
		}
	}
	for name, f := range g.faces {
		if snap.VS[name] == nil {
			f.closeSessions()
			delete(g.faces, name)
		}
	}
	return nil
}

// Check reports whether doc would apply with what the running upstreams
// serve now: the compile Apply does first, without starting or changing
// anything. It finds what only the upstreams' answers show, such as a
// rename colliding with a tool another upstream serves. New and changed
// upstreams are compiled as unknown (Apply finds their collisions once
// they answer). A collision the snapshot in force has too (an upstream
// brought it) does not fail it.
func (g *Gateway) Check(doc *config.Document) error {
	_, _, err := g.check(doc)
	return err
}

// check compiles doc against the catalogs of the running upstreams whose
// definition doc keeps; it returns those upstreams (they keep running
// under doc) and doc's secret bindings.
func (g *Gateway) check(doc *config.Document) (map[string]*upstream, map[string][]*secrets.Binding, error) {
	bindings, err := secrets.Compile(doc.SecretBindings)
	if err != nil {
		return nil, nil, err
	}
	g.mu.Lock()
	keep := map[string]*upstream{}
	cats := map[string]*Catalog{}
	for _, uc := range doc.Upstreams {
		if u := g.upstreams[uc.Name]; u != nil && sameUpstream(u.cfg, uc) && sameEnv(u.secretBindings(), bindings[uc.Name]) {
			keep[uc.Name] = u
			cats[uc.Name] = u.Catalog()
		}
	}
	g.mu.Unlock()
	if _, err := compileAs(refuseNewCollisions, doc, cats, 0, g.snap.Load()); err != nil {
		return nil, nil, err
	}
	return keep, bindings, nil
}

// LastError returns the error of the last failed compile, if the last
// compile failed.
func (g *Gateway) LastError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastErr
}

// KeyUse returns when agents' API keys were last used, for the config
// store's last_used_at.
func (g *Gateway) KeyUse() *identity.KeyUse { return &g.keyUse }

// SetConfigError records why the desired configuration (e.g. the config
// store's latest revision) is not the one in force, or clears it with nil.
// /readyz reports it as config_error, with status degraded.
func (g *Gateway) SetConfigError(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfgErr = err
}

// SetStoreError records that the config store does not answer (nil: it
// does again); /readyz reports it as config_store and is degraded
// meanwhile. The running configuration stays in force.
func (g *Gateway) SetStoreError(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.storeErr = err
}

// storeError returns what [Gateway.SetStoreError] recorded.
func (g *Gateway) storeError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.storeErr
}

// ConfigError returns what [Gateway.SetConfigError] recorded.
func (g *Gateway) ConfigError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfgErr
}

// UpstreamHealth returns the health of every upstream by name.
func (g *Gateway) UpstreamHealth() map[string]Health {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]Health, len(g.upstreams))
	for n, u := range g.upstreams {
		out[n] = u.Health()
	}
	return out
}

func (g *Gateway) face(name string) *face {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.faces[name]
}

// newClient builds the go-sdk client for one upstream connection, with
// handlers that relay what the upstream sends toward the right agent.
func (g *Gateway) newClient(u *upstream, conn *upstreamConn) *mcp.Client {
	impl := &mcp.Implementation{Name: "gatehouse", Version: Version}
	opts := &mcp.ClientOptions{
		Logger:         g.log.With("upstream", u.name()),
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
		SessionEnded:   func(*mcp.ClientSession) { conn.sessionEnded() },
		ElicitationCompleteHandler: func(ctx context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
			if f, err := relayTarget(conn); err == nil {
				_ = f.agent.ss.NotifyElicitationComplete(f.ctx, req.Params)
			}
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			if f, err := relayTarget(conn); err == nil {
				_ = f.agent.ss.Log(f.ctx, scrubToAgent(g, conn, f.ctx, req.Params))
			} else {
				u.log.Debug("upstream log message not relayed", "reason", err.Error())
			}
		},
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			r, ok := g.progress.lookup(req.Params.ProgressToken)
			if !ok {
				return
			}
			p := *req.Params
			p.ProgressToken = r.token
			_ = r.flight.agent.ss.NotifyProgress(r.flight.ctx, scrubToAgent(g, conn, r.flight.ctx, &p))
		},
	}
	var agentCaps *mcp.ClientCapabilities
	if conn.agent != nil {
		if ip := conn.agent.ss.InitializeParams(); ip != nil {
			agentCaps = ip.Capabilities
			if ip.ClientInfo != nil {
				impl = ip.ClientInfo
			}
		}
	}
	if agentCaps != nil {
		// Mirror the agent: the upstream sees exactly what the agent offers.
		opts.Capabilities = agentCaps
	} else {
		// Shared sessions serve whichever agent is calling.
		opts.Capabilities = &mcp.ClientCapabilities{
			RootsV2:     &mcp.RootCapabilities{ListChanged: true},
			Sampling:    &mcp.SamplingCapabilities{},
			Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}},
		}
	}
	if agentCaps != nil && agentCaps.Sampling != nil && agentCaps.Sampling.Tools != nil {
		opts.CreateMessageWithToolsHandler = func(ctx context.Context, req *mcp.CreateMessageWithToolsRequest) (*mcp.CreateMessageWithToolsResult, error) {
			return relayRequest(ctx, conn, "sampling", func(ctx context.Context, ss *mcp.ServerSession) (*mcp.CreateMessageWithToolsResult, error) {
				return ss.CreateMessageWithTools(ctx, scrubToAgent(g, conn, ctx, req.Params))
			})
		}
	} else {
		opts.CreateMessageHandler = func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return relayRequest(ctx, conn, "sampling", func(ctx context.Context, ss *mcp.ServerSession) (*mcp.CreateMessageResult, error) {
				return ss.CreateMessage(ctx, scrubToAgent(g, conn, ctx, req.Params))
			})
		}
	}
	if conn.control {
		refresh := func() {
			go func() {
				if err := u.refreshCatalog(g.ctx); err != nil {
					u.log.Warn("relist after list_changed", "error", err)
				}
			}()
		}
		opts.ToolListChangedHandler = func(context.Context, *mcp.ToolListChangedRequest) { refresh() }
		opts.PromptListChangedHandler = func(context.Context, *mcp.PromptListChangedRequest) { refresh() }
		opts.ResourceListChangedHandler = func(context.Context, *mcp.ResourceListChangedRequest) { refresh() }
		opts.ResourceUpdatedHandler = func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			g.resourceUpdated(ctx, u.name(), req.Params)
		}
	}
	c := mcp.NewClient(impl, opts)
	c.AddReceivingMiddleware(g.clientRelay(conn))
	return c
}

// clientRelay answers an upstream's roots/list and elicitation/create by
// asking the agent. They are intercepted before the go-sdk client's own
// handling, which would answer roots from the gateway's (empty) list and
// validate, then rewrite (apply defaults to), elicitation exchanges that
// must pass through unchanged.
func (g *Gateway) clientRelay(conn *upstreamConn) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "roots/list":
				params, _ := req.GetParams().(*mcp.ListRootsParams)
				return relayRequest(ctx, conn, "roots", func(ctx context.Context, ss *mcp.ServerSession) (*mcp.ListRootsResult, error) {
					return ss.ListRoots(ctx, params)
				})
			case "elicitation/create":
				params, _ := req.GetParams().(*mcp.ElicitParams)
				return relayRequest(ctx, conn, "elicitation", func(ctx context.Context, ss *mcp.ServerSession) (*mcp.ElicitResult, error) {
					return ss.Elicit(ctx, scrubToAgent(g, conn, ctx, params))
				})
			}
			return next(ctx, method, req)
		}
	}
}

// relayRequest asks the agent behind conn something on the upstream's
// behalf, which needs the agent's capability capability (sampling,
// elicitation, roots). If the upstream cancels its request, the agent's is
// cancelled too. An agent that did not declare the capability is not
// asked: the upstream is told at once, instead of waiting for an answer
// that will not come.
func relayRequest[R any](upstreamCtx context.Context, conn *upstreamConn, capability string, ask func(context.Context, *mcp.ServerSession) (R, error)) (R, error) {
	var zero R
	f, err := relayTarget(conn)
	if err != nil {
		return zero, err
	}
	if !declared(f.agent.ss, capability) {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound,
			Message: fmt.Sprintf("the agent did not declare the %s capability, so the gateway does not ask it", capability)}
	}
	ctx, cancel := context.WithCancel(f.ctx)
	stop := context.AfterFunc(upstreamCtx, cancel)
	defer func() {
		stop()
		cancel()
	}()
	return ask(ctx, f.agent.ss)
}

// declared reports whether the agent of ss declared capability (sampling,
// elicitation, roots) when it initialized; true when that is not known.
func declared(ss *mcp.ServerSession, capability string) bool {
	if ss == nil {
		return true
	}
	ip := ss.InitializeParams()
	if ip == nil || ip.Capabilities == nil {
		return true
	}
	c := ip.Capabilities
	switch capability {
	case "sampling":
		return c.Sampling != nil
	case "elicitation":
		return c.Elicitation != nil
	case "roots":
		return c.RootsV2 != nil
	}
	return true
}

// scrubToAgent returns v, something an upstream sends toward an agent on
// a call's behalf (a request's params, a notification's), with every
// secret injected into that call (ctx's) or its connection scrubbed: not
// only results must not hand credentials to agents.
func scrubToAgent[R any](g *Gateway, conn *upstreamConn, ctx context.Context, v R) R {
	return scrubbed(func(binding string) {
		g.log.Warn("upstream sent an injected secret toward the agent; scrubbed", "upstream", conn.up.name(), "binding", binding)
	}, v, secrets.InjectionFrom(ctx), conn.in)
}

// errNotFound is returned for names a virtual server does not expose.
var errNotFound = errors.New("not found")

func notExposed(kind, name, vs string) error {
	return fmt.Errorf("%w: %s %q is not exposed by virtual server %q", errNotFound, kind, name, vs)
}
