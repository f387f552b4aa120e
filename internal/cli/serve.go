package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/graph"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/console"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

const serveUsage = `Usage: gatehouse serve [flags]

Runs the gateway. Agents connect to /mcp/<virtual-server> (streamable HTTP)
or /sse/<virtual-server> (legacy SSE); admins to /graphql (GraphQL admin API,
with a query page for browsers); /healthz, /readyz and /metrics serve
operators.

Configuration lives in the config store (SQLite in the data directory by
default, PostgreSQL with --database-url). On an empty store, the file given
with --config seeds it; after that the store wins, and every committed
admin API change is applied live, without dropping sessions, by every
gateway on the same database. The file always supplies the process settings
(listen, data_dir, log, limits, http).

On first start a bootstrap admin token is created: printed once on stderr,
or read from / written to --admin-token-file.

Access is default deny: agents see and call only what grants allow (see
README, "Access control and guardrails"). Agents authenticate with API keys,
OIDC JWTs (auth.oidc) or client certificates (auth.mtls: HTTPS).

Human approval: a call that needs approval (a require_approval grant, an
approval rule, a guardrail) runs as a Temporal workflow and the agent's
tools/call waits for approvers (up to --approval-hold), who decide with
'gatehouse approvals' or the GraphQL API. Temporal is embedded (SQLite in
DATA_DIR/temporal) unless --temporal-address names a cluster; replicas that
share a PostgreSQL store must share one Temporal too. A cluster that is down
at start is retried in the background: meanwhile calls that need approval
are refused and the rest are served.

Secrets: secret bindings (GraphQL createSecretBinding, or secret_bindings in
the file) inject credentials from Vault or OpenBao into upstream requests
just in time (headers, query parameters, a stdio process's environment, or
tool arguments agents never see). --vault-addr and --vault-auth say where
Vault is and how to log in; without them requests that need a secret fail.

Audit: every agent request is recorded (who, what, decision, findings,
approval, secret bindings, outcome, latency) in a local spool before it is
acknowledged, hash-chained per node, and shipped to ClickHouse: the
embedded engine (DATA_DIR/audit, the default) or a server/cluster
(--clickhouse-addr). See --audit* and --clickhouse* below, and
'gatehouse audit'.

Signals: SIGHUP tries the configuration file on the running gateway and, if
the gateway takes it, writes it to the store, merged as 'gatehouse apply -f'
does: what the file mentions is made to equal it, what it does not mention
(entities made through the admin API, say) is left alone. With
--reload-prune it is written declaratively instead (what the file lacks is
deleted, each deletion logged). A file that fails changes nothing. A SIGHUP received
while the gateway starts is applied once it serves. SIGINT and SIGTERM
shut down gracefully: new connections are refused, calls held for
approval are answered (not run; the approval stays pending), and calls in
flight finish and deliver their answers (up to --shutdown-grace) before
the sessions close.

Memory: the Go collector's GOGC adapts to the live heap (set for about
128 MiB of headroom after each collection, within 25-1600), so
thousands of idle sessions stay lean; a set $GOGC turns that off, and
$GOMEMLIMIT works as usual.

Flags:
`

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file, YAML (default $"+EnvConfig+")")
	listen := fs.String("listen", "", "listen address host:port (default $"+EnvListen+", else the file's listen, else "+config.DefaultListen+")")
	dataDir := fs.String("data-dir", "", "data directory (default $"+EnvDataDir+", else the file's data_dir, else "+config.DefaultDataDir+")")
	logLevel := fs.String("log-level", "", "debug | info | warn | error (default $"+EnvLogLevel+", else the file's log.level, else info)")
	dbURL := fs.String("database-url", "", "config store: postgres://user:pass@host/db or sqlite:///path/file.db (default $"+EnvDatabaseURL+", else DATA_DIR/gatehouse.db)")
	tokenFile := fs.String("admin-token-file", "", "bootstrap admin token: read from this file, or generated into it when missing (default $"+EnvAdminTokenFile+"; else printed once)")
	introspection := fs.Bool("graphql-introspection", true, "answer GraphQL introspection queries (__schema, __type)")
	playground := fs.Bool("graphql-playground", true, "serve the GraphQL query page to browsers at /graphql")
	poll := fs.Duration("store-poll", 250*time.Millisecond, "how often to check the config store for changes made elsewhere (other replicas)")
	usageFlush := fs.Duration("key-use-flush", 30*time.Second, "how often to write agents' API key last-use times to the config store")
	reloadPrune := fs.Bool("reload-prune", false, "on SIGHUP, make the config store hold exactly the configuration file, deleting what it lacks (entities made through the admin API included), as 'gatehouse apply --prune -f' does; default: merge the file, as 'gatehouse apply -f' does")
	grace := fs.Duration("shutdown-grace", 20*time.Second, "on SIGTERM or SIGINT, how long agent calls in flight may take to finish and deliver their answers before the sessions are closed (new connections are refused at once)")
	var tf temporalFlags
	tf.register(fs, true)
	var vf vaultFlags
	vf.register(fs)
	var af auditFlags
	af.register(fs)
	var df debugFlags
	df.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	// SIGHUP is caught from here on: one that arrives while the gateway
	// starts (an orchestrator's reload right after the start) waits and
	// reloads once it serves. Caught only at serving, as before, Go's
	// default action for it ended the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if *path == "" {
		*path = os.Getenv(EnvConfig)
	}
	if *tokenFile == "" {
		*tokenFile = os.Getenv(EnvAdminTokenFile)
	}
	if *poll <= 0 || *usageFlush <= 0 {
		return usageError{errors.New("--store-poll and --key-use-flush must be positive")}
	}
	if *grace < 0 {
		return usageError{errors.New("--shutdown-grace must not be negative")}
	}
	file, err := loadConfig(*path, *listen, *dataDir, *logLevel)
	if err != nil {
		return err
	}
	log, gcSetting, client, err := openProcess(ctx, file, *dbURL, stderr)
	if err != nil {
		return err
	}
	defer client.Close()
	stopDebug, err := df.start(log)
	if err != nil {
		return err
	}
	defer stopDebug()
	vault, err := vf.start(ctx, log)
	if err != nil {
		return err
	}
	defer vault.Close()
	auditRT, err := af.start(ctx, log, file.DataDir)
	if err != nil {
		return err
	}
	// Closed after the gateway (deferred first, run last): the events of
	// the last requests are in the spool by then.
	defer auditRT.close()
	sink := auditRT.sink()
	seeded, err := seedStore(ctx, log, client, *path, file)
	if err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, log, client, *tokenFile, stderr); err != nil {
		return err
	}
	syncer := newConfigSync(log, client, processSettings(file), *path, [3]string{*listen, *dataDir, *logLevel})
	syncer.poll, syncer.usageFlush, syncer.reloadPrune = *poll, *usageFlush, *reloadPrune
	doc, rev, err := syncer.load(ctx)
	if err != nil {
		return err
	}
	syncer.rev, syncer.pinning = rev, doc.Pinning.Mode
	// A stored configuration the gateway cannot take (written by an older
	// version or by hand, or a name collision only the upstreams' answers
	// show) does not stop the start: that would take the admin API down
	// with the data path, and with it the way to repair the store. The
	// gateway serves no virtual server until a stored revision applies,
	// and /readyz says why. Only a configuration file that seeded the
	// store just now fails the start, as a file's mistakes should.
	var configErr error
	if err := doc.Validate(); err != nil {
		if seeded {
			return fmt.Errorf("stored configuration: %w", err)
		}
		configErr = err
		log.Error("stored configuration is invalid; serving the admin API and no virtual server until it is repaired", "store_revision", rev, "error", err)
		doc = withoutEntities(doc)
	}
	if !hasContent(doc) {
		log.Warn("no configuration yet: create upstreams and virtual servers through /graphql, `gatehouse apply -f`, or --config on an empty store")
	}
	warnAnonymous(log, doc)

	authn, err := newAuthenticators(ctx, log, file.Auth)
	if err != nil {
		return err
	}
	defer authn.close()
	graph.CheckExpression = policy.CheckExpression
	g := proxy.New(doc, &proxy.Options{
		Logger:         log,
		Authenticators: authn.list,
		Resource:       authn.resource(file),
		Secrets:        vault,
		Audit:          sink,
		OnCatalog: func(upstream string, tools []*mcp.Tool) {
			syncer.recordTools(ctx, upstream, tools)
		},
	})
	syncer.g = g
	if auditRT != nil {
		if err := g.RegisterMetrics(auditRT.writer.Collectors()...); err != nil {
			return fmt.Errorf("audit metrics: %w", err)
		}
	}
	ln, err := net.Listen("tcp", doc.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", doc.Listen, err)
	}
	if authn.mtls != nil {
		tc := authn.mtls.TLSConfig()
		tc.NextProtos = []string{"h2", "http/1.1"} // see serveProtocols
		ln = tls.NewListener(ln, tc)
	}
	if err := g.Start(ctx); err != nil {
		if seeded {
			ln.Close()
			g.Close()
			return fmt.Errorf("start gateway: %w", err)
		}
		configErr = err
		log.Error("stored configuration does not apply; serving the admin API and no virtual server until it is repaired", "store_revision", rev, "error", err)
	}
	if configErr != nil {
		g.SetConfigError(fmt.Errorf("store revision %d: %w", rev, configErr))
	}
	var approvals *approvalRuntime
	var decider graph.Approvals
	if tf.enabled {
		if tf.address == "" && strings.HasPrefix(databaseURL(*dbURL, file.DataDir), "postgres") {
			log.Warn("approval workflows run on this gateway's embedded Temporal: with replicas on one PostgreSQL store, an approval held by one replica cannot be decided through another; give every replica the same --temporal-address")
		}
		approvals, err = startApprovals(ctx, log, client, g, &tf, file.DataDir, sink, true)
		if err != nil {
			ln.Close()
			g.Close()
			return fmt.Errorf("approval workflows: %w (start with --approvals=false to run without them)", err)
		}
		defer approvals.close()
		g.SetApprovals(approvals.service)
		decider = approvals.service.AdminAPI()
	} else {
		log.Warn("approval workflows are off (--approvals=false): calls that need approval are refused")
	}
	var auditAPI graph.AuditAPI
	if auditRT != nil {
		auditAPI = auditRT.api()
	}
	adminOpts := &graph.HandlerOptions{
		Gateway:              gatewayAdmin{g},
		Approvals:            decider,
		Audit:                auditAPI,
		Authenticate:         authn.adminAuthenticator(file.Auth),
		DisableIntrospection: !*introspection,
		DisablePlayground:    !*playground,
		Logger:               log,
	}
	admin := graph.NewHandler(client, adminOpts)
	mux := http.NewServeMux()
	mux.Handle("/graphql", nudgeAfter(admin, syncer))
	mux.Handle("/audit/", graph.NewAuditHandler(client, adminOpts))
	mux.Handle("/console/", console.New(nudgeAfter(admin, syncer), &console.Options{Audit: graph.NewAuditHandler(client, adminOpts), Status: g.Handler(), Logger: log}))
	if h := authn.metadataHandler(file); h != nil {
		mux.Handle("/.well-known/oauth-protected-resource", h)
		mux.Handle("/.well-known/oauth-protected-resource/", h)
	}
	mux.Handle("/", g.Handler())
	srv := &http.Server{
		Handler:           bodyReadDeadline(mux, file.Limits.BodyReadTimeout.Std()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Protocols:         serveProtocols(authn.mtls != nil),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go syncer.run(syncCtx)
	if auditRT != nil {
		go newAdminAuditor(log, client, auditRT.writer, file.DataDir).run(syncCtx, time.Second)
	}
	log.Info("gatehouse serving", "version", Version(), "gc", gcSetting, "listen", ln.Addr().String(),
		"upstreams", len(doc.Upstreams), "virtual_servers", len(doc.VirtualServers),
		"admin_api", "http://"+ln.Addr().String()+"/graphql")

	for {
		select {
		case <-hup:
			syncer.Reload()
		case err := <-errc:
			g.Close()
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			log.Info("shutting down", "grace", grace.String())
			stopSync()
			sctx, cancel := context.WithTimeout(context.Background(), *grace+10*time.Second)
			defer cancel()
			// No new connections from here on; Shutdown returns once the
			// open ones are done.
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(sctx) }()
			// The approval worker stops first: held calls are answered
			// (not run, the approval stays pending and a retry joins it),
			// and approved calls in flight finish on the upstreams the
			// gateway still holds.
			approvals.close()
			// Calls in flight finish and deliver their answers...
			dctx, dcancel := context.WithTimeout(sctx, *grace)
			if n := g.Drain(dctx); n > 0 {
				log.Warn("shutdown grace over: agent requests still running are cut off", "requests", n, "grace", grace.String())
			}
			dcancel()
			// ...then closing the agent sessions ends their long-lived
			// streams, which would otherwise hold Shutdown open until its
			// deadline.
			g.Close()
			if err := <-shut; err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		}
	}
}

// nudgeAfter asks syncer to apply the store right after every admin API
// request, so a committed mutation reaches the data path without waiting
// for the next poll.
// openProcess sets up what serve and worker share: the logger (also slog's
// default), the garbage collector, the data directory and the config store
// at dbURL (default in the data directory).
func openProcess(ctx context.Context, file *config.Document, dbURL string, stderr io.Writer) (*slog.Logger, string, *ent.Client, error) {
	log := newLogger(file.Log, stderr)
	slog.SetDefault(log)
	gcSetting := tuneGC(log)
	if err := os.MkdirAll(file.DataDir, 0o750); err != nil {
		return nil, "", nil, fmt.Errorf("create data dir: %w", err)
	}
	url := databaseURL(dbURL, file.DataDir)
	client, err := store.Open(ctx, url)
	if err != nil {
		return nil, "", nil, err
	}
	log.Info("config store open", "database", redactURL(url))
	return log, gcSetting, client, nil
}

func nudgeAfter(h http.Handler, syncer *configSync) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			syncer.Nudge()
		}
	})
}

func warnAnonymous(log *slog.Logger, doc *config.Document) {
	for _, vs := range doc.VirtualServers {
		if vs.Anonymous {
			log.Warn("virtual server allows unauthenticated agents (anonymous: true)", "vs", vs.Name)
		}
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serveProtocols are the HTTP versions the gateway speaks: HTTP/1.1, and
// HTTP/2 — over TLS (negotiated with ALPN) with mTLS, else cleartext with
// prior knowledge (h2c), which HTTP/1.1 clients never trigger. Over
// HTTP/2 an agent's sessions share one connection instead of holding a
// connection (and a file descriptor) each for their event streams.
func serveProtocols(tls bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if tls {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return p
}
