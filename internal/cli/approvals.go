package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/internal/approval"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/workflows/devserver"
)

// Environment variables naming an external Temporal cluster.
const (
	EnvTemporalAddress = "GATEHOUSE_TEMPORAL_ADDRESS"
	EnvTemporalAPIKey  = "GATEHOUSE_TEMPORAL_API_KEY"
)

// temporalFlags are the flags of serve and worker that say where approval
// workflows run.
type temporalFlags struct {
	enabled, worker                    bool
	address, namespace, queue          string
	tls                                bool
	ca, cert, key, serverName, keyFile string
	hold                               time.Duration
}

func (t *temporalFlags) register(fs *flag.FlagSet, serve bool) {
	if serve {
		fs.BoolVar(&t.enabled, "approvals", true, "run approval workflows (calls that need approval are refused when false)")
		fs.DurationVar(&t.hold, "approval-hold", approval.DefaultHold, "how long an agent's tools/call waits for its approval before it gets a retry-later tool error")
		fs.BoolVar(&t.worker, "approval-worker", true, "run approval workflows in this process too (false: only start them, for dedicated 'gatehouse worker' processes)")
	}
	fs.StringVar(&t.address, "temporal-address", os.Getenv(EnvTemporalAddress), "external Temporal frontend host:port (default $"+EnvTemporalAddress+", else start an embedded Temporal server on SQLite in DATA_DIR/temporal)")
	fs.StringVar(&t.namespace, "temporal-namespace", "gatehouse", "Temporal namespace of the approval workflows")
	fs.StringVar(&t.queue, "temporal-task-queue", approval.DefaultTaskQueue, "Temporal task queue of the approval workflows")
	fs.BoolVar(&t.tls, "temporal-tls", false, "connect to the external Temporal over TLS (implied by the other --temporal-tls-* flags)")
	fs.StringVar(&t.ca, "temporal-tls-ca", "", "PEM CA bundle that verifies the Temporal server (default: system roots)")
	fs.StringVar(&t.cert, "temporal-tls-cert", "", "PEM client certificate for mTLS to Temporal")
	fs.StringVar(&t.key, "temporal-tls-key", "", "PEM key of --temporal-tls-cert")
	fs.StringVar(&t.serverName, "temporal-tls-server-name", "", "server name to verify instead of the address's host")
	fs.StringVar(&t.keyFile, "temporal-api-key-file", "", "file holding the Temporal API key (default $"+EnvTemporalAPIKey+")")
}

func (t *temporalFlags) options(dataDir string, log *slog.Logger) (approval.TemporalOptions, error) {
	o := approval.TemporalOptions{Address: t.address, Namespace: t.namespace, DataDir: dataDir,
		TLS: t.tls, CAFile: t.ca, CertFile: t.cert, KeyFile: t.key, ServerName: t.serverName, Logger: log}
	o.APIKey = os.Getenv(EnvTemporalAPIKey)
	if t.keyFile != "" {
		b, err := os.ReadFile(t.keyFile)
		if err != nil {
			return o, fmt.Errorf("temporal API key: %w", err)
		}
		o.APIKey = strings.TrimSpace(string(b))
	}
	if t.address == "" && (o.APIKey != "" || o.TLS || t.ca != "" || t.cert != "") {
		return o, usageError{errors.New("--temporal-tls*, --temporal-api-key-file and $" + EnvTemporalAPIKey + " need --temporal-address (the embedded server listens on loopback only)")}
	}
	return o, nil
}

// approvalRuntime is the running approval machinery of a process.
type approvalRuntime struct {
	temporal *approval.Temporal
	service  *approval.Service
	once     sync.Once

	mu         sync.Mutex
	stopWorker func() // nil until the worker runs
	// While an external Temporal that was unreachable at start is awaited:
	// cancelAwait stops the wait, awaited is closed when it has ended.
	cancelAwait context.CancelFunc
	awaited     chan struct{}
}

// startApprovals connects to Temporal (starting the embedded server when
// no address is given), and runs the approval worker against g. With
// allowUnreachable, an external Temporal that cannot be reached does not
// fail the start: approvals are refused (and /readyz says why) until it
// answers, and then the worker starts.
func startApprovals(ctx context.Context, log *slog.Logger, client *ent.Client, g *proxy.Gateway, tf *temporalFlags, dataDir string, sink proxy.AuditSink, allowUnreachable bool) (*approvalRuntime, error) {
	topts, err := tf.options(dataDir, log)
	if err != nil {
		return nil, err
	}
	topts.AllowUnreachable = allowUnreachable
	start := time.Now()
	t, err := approval.ConnectTemporal(ctx, topts)
	if err != nil {
		return nil, err
	}
	svc := approval.New(approval.Options{Temporal: t.Client, Store: client, Gateway: g, TaskQueue: tf.queue,
		Hold: tf.hold, SearchAttributes: t.SearchAttributes, Audit: sink, Logger: log})
	if err := g.RegisterMetrics(svc.Collectors()...); err != nil {
		t.Close()
		return nil, fmt.Errorf("approval metrics: %w", err)
	}
	rt := &approvalRuntime{temporal: t, service: svc}
	ready := func() {
		where := "external"
		if t.Embedded {
			where = "embedded (" + dataDir + "/temporal)"
		}
		attrs := []any{"temporal", where, "temporal_address", t.Address, "namespace", topts.Namespace,
			"task_queue", svc.TaskQueue(), "worker", tf.worker, "search_attributes", t.SearchAttributes,
			"startup_ms", time.Since(start).Milliseconds()}
		if t.Embedded {
			// It speaks mutual TLS only: a worker or the temporal CLI on
			// this host presents these files (readable by this user only).
			attrs = append(attrs, "temporal_tls_ca", t.TLSFiles.CA, "temporal_tls_cert", t.TLSFiles.Cert,
				"temporal_tls_key", t.TLSFiles.Key, "temporal_tls_server_name", devserver.ServerName)
		}
		log.Info("approval workflows ready", attrs...)
	}
	if t.Unreachable != nil {
		log.Warn("temporal unreachable: serving, but calls that need approval are refused until it answers",
			"temporal_address", t.Address, "error", t.Unreachable.Error())
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		rt.cancelAwait, rt.awaited = cancel, make(chan struct{})
		go func() {
			defer close(rt.awaited)
			if t.Await(actx) != nil {
				return
			}
			if t.SearchAttributes {
				svc.EnableSearchAttributes()
			}
			if tf.worker && !rt.startWorker(actx, log) {
				return
			}
			ready()
		}()
		return rt, nil
	}
	if tf.worker {
		stop, err := svc.StartWorker(t)
		if err != nil {
			t.Close()
			return nil, err
		}
		rt.stopWorker = stop
	}
	ready()
	return rt, nil
}

// startWorker starts the worker once an awaited Temporal answers,
// retrying every 5 s until it starts (true) or ctx ends (false).
func (r *approvalRuntime) startWorker(ctx context.Context, log *slog.Logger) bool {
	for {
		stop, err := r.service.StartWorker(r.temporal)
		if err == nil {
			r.mu.Lock()
			r.stopWorker = stop
			r.mu.Unlock()
			return true
		}
		log.Warn("approval worker not started; retrying", "retry_in", "5s", "error", err.Error())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Second):
		}
	}
}

// close stops the worker and disconnects (stopping the embedded server);
// it is safe to call twice.
func (r *approvalRuntime) close() {
	if r == nil {
		return
	}
	r.once.Do(func() {
		if r.cancelAwait != nil {
			r.cancelAwait()
			<-r.awaited
		}
		r.mu.Lock()
		stop := r.stopWorker
		r.mu.Unlock()
		if stop != nil {
			stop()
		}
		r.temporal.Close()
	})
}
