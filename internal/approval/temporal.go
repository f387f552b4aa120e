package approval

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/gatehouse-dev/gatehouse/workflows"
	"github.com/gatehouse-dev/gatehouse/workflows/devserver"
)

// TemporalOptions say which Temporal cluster approvals run on.
type TemporalOptions struct {
	// Address of an external cluster's frontend (host:port). Empty starts
	// the embedded server in DataDir.
	Address string
	// Namespace of the workflows. Default devserver.DefaultNamespace
	// ("gatehouse").
	Namespace string
	// DataDir holds the embedded server's SQLite file (temporal.db).
	DataDir string
	// TLS to the external cluster: on when TLS is set or any file is given.
	// CAFile verifies the server (default: system roots); CertFile and
	// KeyFile present a client certificate (mTLS); ServerName overrides
	// the name checked.
	TLS                                   bool
	CAFile, CertFile, KeyFile, ServerName string
	// APIKey authenticates to the external cluster (Temporal Cloud style
	// bearer key); empty means none.
	APIKey string
	// Logger receives the server's and SDK's warnings.
	Logger *slog.Logger
	// AllowUnreachable makes an external cluster that cannot be reached
	// at start not an error: the client connects lazily, [Temporal].Unreachable
	// says why it could not yet, and approvals are unavailable until it
	// answers (see [Temporal.Await]). The gateway's other calls need no
	// Temporal, so they need not wait for it.
	AllowUnreachable bool
}

// Temporal is a connection to the cluster approvals run on, and the
// embedded server when there is one.
type Temporal struct {
	Client client.Client
	// SearchAttributes says the namespace has the workflows' search
	// attributes.
	SearchAttributes bool
	// Embedded says the server runs in this process.
	Embedded bool
	// Unreachable is why the external cluster could not be reached at
	// start ([TemporalOptions].AllowUnreachable); nil when it was.
	Unreachable error
	// Address is the frontend's host:port (the embedded server's too, for
	// workers and the temporal CLI on this host).
	Address string
	// TLSFiles are, for the embedded server, the CA and the client
	// certificate workers and the temporal CLI present (it speaks mutual
	// TLS only, so that no other process on the host can decide
	// approvals).
	TLSFiles devserver.TLSFiles

	server    *devserver.Server
	namespace string
	log       *slog.Logger
}

// ConnectTemporal starts the embedded server (o.Address empty) or dials
// the external cluster, and makes sure the namespace has the workflows'
// search attributes (on an external cluster, a failure to register them
// is logged and approvals run without them).
func ConnectTemporal(ctx context.Context, o TemporalOptions) (*Temporal, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Namespace == "" {
		o.Namespace = devserver.DefaultNamespace
	}
	sdkLogger := sdklog.NewStructuredLogger(quiet(o.Logger))
	if o.Address == "" {
		srv, err := devserver.Start(ctx, devserver.Options{DataDir: filepath.Join(o.DataDir, "temporal"), Namespace: o.Namespace, Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("start embedded temporal: %w", err)
		}
		copts := srv.ClientOptions()
		copts.Logger = sdkLogger
		c, err := client.Dial(copts)
		if err != nil {
			_ = srv.Stop()
			return nil, fmt.Errorf("connect to embedded temporal: %w", err)
		}
		return &Temporal{Client: c, SearchAttributes: true, Embedded: true, Address: srv.HostPort(), TLSFiles: srv.TLSFiles(), server: srv}, nil
	}
	copts := client.Options{HostPort: o.Address, Namespace: o.Namespace, Logger: sdkLogger}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	copts.ConnectionOptions.TLS = tlsCfg
	if o.APIKey != "" {
		copts.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	}
	c, err := client.DialContext(ctx, copts)
	if err != nil {
		err = fmt.Errorf("connect to temporal at %s (namespace %s): %w", o.Address, o.Namespace, err)
		if !o.AllowUnreachable {
			return nil, err
		}
		lazy, lerr := client.NewLazyClient(copts)
		if lerr != nil {
			return nil, errors.Join(err, lerr)
		}
		return &Temporal{Client: lazy, Address: o.Address, Unreachable: err, namespace: o.Namespace, log: o.Logger}, nil
	}
	t := &Temporal{Client: c, Address: o.Address, namespace: o.Namespace, log: o.Logger}
	t.ensureSearchAttributes(ctx)
	return t, nil
}

// ensureSearchAttributes registers the workflows' search attributes on an
// external cluster's namespace, or logs why it could not.
func (t *Temporal) ensureSearchAttributes(ctx context.Context) {
	if err := workflows.EnsureSearchAttributes(ctx, t.Client, t.namespace); err != nil {
		t.log.Warn("approval workflows run without search attributes; register them to list approvals in Temporal (see README)",
			"namespace", t.namespace, "error", err)
		return
	}
	t.SearchAttributes = true
}

// Await waits, retrying with backoff up to every 10 s, until a cluster
// that was unreachable at start answers, then registers the search
// attributes and returns nil; or returns ctx's error. It logs a failure
// a minute (the caller logs that the cluster was unreachable at start).
func (t *Temporal) Await(ctx context.Context) error {
	backoff := time.Second
	logged := time.Now()
	for {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := t.Client.CheckHealth(hctx, &client.CheckHealthRequest{})
		cancel()
		if err == nil {
			t.Unreachable = nil
			t.ensureSearchAttributes(ctx)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(logged) >= time.Minute {
			logged = time.Now()
			t.log.Warn("temporal still unreachable; calls that need approval are refused until it answers",
				"temporal_address", t.Address, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (o TemporalOptions) tlsConfig() (*tls.Config, error) {
	if !o.TLS && o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" && o.ServerName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal TLS CA %s: no PEM certificates", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("temporal TLS: give both the client certificate and its key, or neither")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Close closes the client and stops the embedded server.
func (t *Temporal) Close() {
	t.Client.Close()
	if t.server != nil {
		if err := t.server.Stop(); err != nil {
			slog.Warn("stopping embedded temporal", "error", err)
		}
	}
}

// StartWorker runs a worker for s's workflows and activities on t until
// the returned stop function is called.
func (s *Service) StartWorker(t *Temporal) (stop func(), err error) {
	// Stop waits this long for activities in flight (an approved call
	// running upstream) before abandoning them to a retry elsewhere.
	w := worker.New(t.Client, s.o.TaskQueue, worker.Options{WorkerStopTimeout: 10 * time.Second})
	workflows.Register(w, s.Activities())
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start approval worker on task queue %s: %w", s.o.TaskQueue, err)
	}
	return w.Stop, nil
}

// quiet drops the SDK's info logs (worker start and stop, polls).
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{l.Handler(), slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (h levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFilter{h.Handler.WithAttrs(as), h.min}
}

func (h levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{h.Handler.WithGroup(name), h.min}
}
