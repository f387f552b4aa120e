// Package devserver runs a Temporal server inside the gateway process, the
// default when no external cluster is configured.
//
// The server (go.temporal.io/server) persists to a SQLite file in the data
// directory, so workflows — approvals waiting for people among them — survive
// a restart or a crash of the process. All four Temporal services (frontend,
// history, matching, worker) run in-process and listen on ports of the host
// in [Options].HostPort (loopback by default); only the frontend address
// ([Server.HostPort]) is meant for clients. There is no UI, no HTTP API, no
// metrics endpoint and no pprof listener.
//
// One process at a time may use a data directory: [Start] treats every
// server recorded in the file as dead (see forgetMembers).
//
// The namespace has the search attributes of [workflows.SearchAttributeTypes]:
// a new namespace gets them on creation, one created by an earlier version
// when the server starts.
//
// This is the only package that imports the Temporal server. Linking it adds
// about 200 MB to a binary and minutes of CPU to a cold build, so keep it here
// and let other packages depend on a client address, not on this package.
package devserver

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	_ "modernc.org/sqlite" // the driver of Temporal's SQLite plugin; forgetMembers uses it too

	"github.com/gatehouse-dev/gatehouse/workflows"
)

// Defaults for [Options].
const (
	DefaultNamespace = "gatehouse"
	DefaultHostPort  = "127.0.0.1:0"
	// DBFile is the name of the SQLite file in [Options].DataDir.
	DBFile = "temporal.db"
)

// clusterName is the name of the single, local cluster.
const clusterName = "active"

// Options configure [Start].
type Options struct {
	// DataDir is the directory that holds the SQLite file [DBFile]. It is
	// created if missing. Required.
	DataDir string
	// Namespace is registered on start if it does not exist.
	// Defaults to [DefaultNamespace].
	Namespace string
	// HostPort is the frontend's listen address; its host, an IP address
	// or "localhost", is also where the internal services listen. Port 0
	// picks a free port. Defaults to [DefaultHostPort].
	HostPort string
	// Logger receives the server's warnings and errors (Temporal's info and
	// debug logs are dropped). Defaults to [slog.Default].
	Logger *slog.Logger
}

// Server is a running in-process Temporal server.
type Server struct {
	srv       temporal.Server
	log       *slogLogger
	hostPort  string
	namespace string
	tls       TLSFiles
	clientTLS *tls.Config
}

// HostPort returns the frontend's address for [client.Options].HostPort.
func (s *Server) HostPort() string { return s.hostPort }

// TLSFiles are the CA and the client certificate a client of the server
// needs (it accepts mutual TLS only).
func (s *Server) TLSFiles() TLSFiles { return s.tls }

// ClientOptions are the options of an SDK client of the server, its
// namespace and mutual TLS set; the caller adds a logger and the like.
func (s *Server) ClientOptions() client.Options {
	return client.Options{HostPort: s.hostPort, Namespace: s.namespace,
		ConnectionOptions: client.ConnectionOptions{TLS: s.clientTLS.Clone()}}
}

// Namespace returns the registered namespace.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the server. Workflows in progress stay in the SQLite file and
// resume when a server starts on the same data directory.
func (s *Server) Stop() error {
	s.log.quiet.Store(true)
	if err := s.srv.Stop(); err != nil {
		return fmt.Errorf("stopping temporal server: %w", err)
	}
	return nil
}

// Start starts a Temporal server persisting to DataDir, registers the
// namespace and returns once the frontend answers for it, or ctx is done.
//
// Ports it picks itself are reserved and released just before the server
// binds them; if another process takes one in that instant, Start tries
// again with new ports (three times).
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	for attempt := 1; ; attempt++ {
		s, err := start(ctx, o)
		if err == nil || attempt == 3 || ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			if err != nil {
				err = fmt.Errorf("starting temporal server: %w", err)
			}
			return s, err
		}
		o.Logger.Warn("temporal: a port was taken while starting; retrying with new ports", "error", err)
	}
}

func start(ctx context.Context, o Options) (_ *Server, err error) {
	if o.DataDir == "" {
		return nil, errors.New("no data directory set")
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.HostPort == "" {
		o.HostPort = DefaultHostPort
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	host, port, err := splitHostPort(o.HostPort)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}

	// Ports: frontend gRPC, and for each service its membership port plus
	// gRPC for the three internal services. Reserving them by listening and
	// closing leaves a small race with other processes; temporaltest does
	// the same.
	// The reserving listeners stay open until all ports are picked, so
	// that no two services get the same one.
	var ports portPicker
	defer ports.release()
	if port == 0 {
		if port, err = ports.pick(host); err != nil {
			return nil, err
		}
	}
	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	service := func(grpcPort int) (config.Service, error) {
		var err error
		if grpcPort == 0 {
			if grpcPort, err = ports.pick(host); err != nil {
				return config.Service{}, err
			}
		}
		mport, err := ports.pick(host)
		if err != nil {
			return config.Service{}, err
		}
		return config.Service{RPC: config.RPC{GRPCPort: grpcPort, MembershipPort: mport, BindOnIP: host}}, nil
	}
	services := map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		p := 0
		if name == "frontend" {
			p = port
		}
		if services[name], err = service(p); err != nil {
			return nil, err
		}
	}

	certs, err := ensureTLS(filepath.Join(o.DataDir, "tls"), time.Now())
	if err != nil {
		return nil, fmt.Errorf("making the TLS certificates: %w", err)
	}
	clientTLS, err := ClientTLS(certs.TLSFiles)
	if err != nil {
		return nil, err
	}
	sqlCfg := sqlConfig(o.DataDir)
	cfg := &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: host},
			TLS:        certs.serverTLS(),
			// Metrics nil: no Prometheus listener. PProf port 0: none.
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: hostPort},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services:            services,
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		// The server's internal workers dial this; it must be set.
		PublicClient: config.PublicClient{HostPort: hostPort},
	}

	if err := setupDB(ctx, sqlCfg, o.Namespace, workflows.SearchAttributeTypes); err != nil {
		return nil, err
	}

	logger := &slogLogger{l: o.Logger, quiet: new(atomic.Bool), starting: new(atomic.Bool)}
	logger.quiet.Store(true)
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("configuring authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("configuring claim mapper: %w", err)
	}
	ports.release()
	srv, err := newServer(logger, cfg, authorizer, claimMapper)
	if err != nil {
		return nil, err
	}
	s := &Server{srv: srv, log: logger, hostPort: hostPort, namespace: o.Namespace, tls: certs.TLSFiles, clientTLS: clientTLS}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if err := s.registerSearchAttributes(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	logger.quiet.Store(false)
	return s, nil
}

// newServer creates and starts the server; a Fatal on the way (a port
// taken meanwhile) is returned as an error.
func newServer(logger *slogLogger, cfg *config.Config, authorizer authorization.Authorizer, claimMapper authorization.ClaimMapper) (srv temporal.Server, err error) {
	logger.starting.Store(true)
	defer logger.starting.Store(false)
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(startFatal)
			if !ok {
				panic(r)
			}
			srv, err = nil, f
		}
	}()
	srv, err = temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		// The frontend otherwise asks version-info.temporal.io for updates
		// on start and then periodically: the gateway connects nowhere
		// beyond loopback unless configured to.
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.EnableServerVersionCheck.Key(): false,
		}),
	)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return srv, nil
}

// sqlConfig configures Temporal's SQLite plugin for the file in dataDir.
func sqlConfig(dataDir string) *config.SQL {
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: filepath.Join(dataDir, DBFile),
		// WAL with synchronous=normal: a committed transaction survives the
		// process being killed (the crash the tests exercise); only an OS
		// crash or power loss can lose the last ones. Full fsync per
		// commit would cost ~40 ms per workflow step on this kind of disk.
		ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal"},
	}
}

// setupDB creates the database and the namespace, with searchAttributes, if
// missing, and clears the membership records of an existing database.
func setupDB(ctx context.Context, sqlCfg *config.SQL, namespace string, searchAttributes map[string]enumspb.IndexedValueType) error {
	if _, err := os.Stat(sqlCfg.DatabaseName); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(sqlCfg); err != nil {
			return fmt.Errorf("creating schema in %s: %w", sqlCfg.DatabaseName, err)
		}
	} else if err != nil {
		return fmt.Errorf("reading %s: %w", sqlCfg.DatabaseName, err)
	} else if err := forgetMembers(ctx, sqlCfg.DatabaseName); err != nil {
		return err
	}
	ns, err := sqlite.NewNamespaceConfig(clusterName, namespace, false, searchAttributes)
	if err != nil {
		return fmt.Errorf("configuring namespace %s: %w", namespace, err)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil { // no-op if it exists
		return fmt.Errorf("registering namespace %s: %w", namespace, err)
	}
	return nil
}

// registerSearchAttributes adds the workflows' search attributes to a
// namespace created without them, by an earlier version, and waits until the
// frontend knows them: the servers' namespace caches refresh every 2s, and
// until then starting a workflow with them fails.
func (s *Server) registerSearchAttributes(ctx context.Context) error {
	opts := s.ClientOptions()
	opts.Logger = nopSDKLogger{}
	c, err := client.NewLazyClient(opts)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	defer c.Close()
	if err := workflows.EnsureSearchAttributes(ctx, c, s.namespace); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, searchAttributesTimeout)
	defer cancel()
	query := fmt.Sprintf("%s = %q", workflows.SearchAttributeState.GetName(), workflows.StatePending)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		_, err := c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: s.namespace, Query: query})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the search attributes of namespace %s: %w (last error: %v)", s.namespace, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// searchAttributesTimeout bounds the wait for new search attributes: a few
// namespace cache refreshes.
const searchAttributesTimeout = 30 * time.Second

// waitReady polls the frontend until it serves the namespace and can reach
// the matching and history services, so that a caller's first request does
// not meet a half-started server ("Not enough hosts to serve the request")
// and its client's retry backoff.
func (s *Server) waitReady(ctx context.Context) error {
	opts := s.ClientOptions()
	opts.Logger = nopSDKLogger{}
	c, err := client.NewLazyClient(opts)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	defer c.Close()
	ws := c.WorkflowService()
	probes := []func() error{
		func() error { // persistence
			_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
			return err
		},
		func() error { // matching
			_, err := ws.DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
				Namespace: s.namespace, TaskQueue: &taskqueuepb.TaskQueue{Name: readinessQueue}})
			return err
		},
		func() error { // history: a missing workflow is the expected answer
			_, err := ws.DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{
				Namespace: s.namespace, Execution: &commonpb.WorkflowExecution{WorkflowId: readinessQueue}})
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return nil
			}
			return err
		},
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for _, probe := range probes {
		for err := probe(); err != nil; err = probe() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for the server at %s: %w (last error: %v)", s.hostPort, ctx.Err(), err)
			case <-t.C:
			}
		}
	}
	return nil
}

// readinessQueue names the task queue and workflow ID [Server.waitReady]
// asks about; neither needs to exist.
const readinessQueue = "gatehouse-devserver-readiness"

// forgetMembers deletes the membership records of earlier runs from the
// database at path.
//
// Temporal's services find each other through the cluster_membership table:
// on start, each service joins the hosts that sent a heartbeat in the last
// 20 seconds. After a restart or a crash those are the dead services of the
// previous run (on other ports), and the new services route requests to them
// until gossip declares them faulty: a minute of "Not enough hosts to serve
// the request" before a pending workflow can make progress. The file belongs
// to one process, so every recorded member is dead and can go.
func forgetMembers(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("clearing stale cluster membership in %s: %w", path, err)
	}
	return nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("parsing host:port %q: %w", hp, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("parsing host:port %q: bad port", hp)
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	// Temporal's services advertise this address to each other: it must
	// be one IP they can all reach.
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return "", 0, fmt.Errorf("parsing host:port %q: the host must be a specific IP address or localhost", hp)
	}
	return host, port, nil
}

// portPicker reserves free ports by listening on them until release.
type portPicker struct{ held []net.Listener }

func (p *portPicker) pick(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	p.held = append(p.held, l)
	return l.Addr().(*net.TCPAddr).Port, nil
}

// release closes the reserving listeners; it is safe to call twice.
func (p *portPicker) release() {
	for _, l := range p.held {
		_ = l.Close()
	}
	p.held = nil
}
