package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

const serveUsage = `Usage: gatehouse serve [flags]

Runs the gateway. Agents connect to /mcp/<virtual-server> (streamable HTTP)
or /sse/<virtual-server> (legacy SSE); /healthz, /readyz and /metrics serve
operators.

Signals: SIGHUP reloads the configuration file without dropping sessions
(an invalid file is reported and the running configuration kept); SIGINT
and SIGTERM shut down gracefully.

Flags:
`

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file, YAML (default $"+EnvConfig+")")
	listen := fs.String("listen", "", "listen address host:port (default $"+EnvListen+", else the file's listen, else "+config.DefaultListen+")")
	dataDir := fs.String("data-dir", "", "data directory (default $"+EnvDataDir+", else the file's data_dir, else "+config.DefaultDataDir+")")
	logLevel := fs.String("log-level", "", "debug | info | warn | error (default $"+EnvLogLevel+", else the file's log.level, else info)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *path == "" {
		*path = os.Getenv(EnvConfig)
	}
	doc, err := loadConfig(*path, *listen, *dataDir, *logLevel)
	if err != nil {
		return err
	}
	log := newLogger(doc.Log, stderr)
	slog.SetDefault(log)
	if err := os.MkdirAll(doc.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if *path == "" {
		log.Warn("no configuration file given (--config or $" + EnvConfig + "): serving no virtual servers")
	}
	warnAnonymous(log, doc)

	g := proxy.New(doc, &proxy.Options{Logger: log})
	ln, err := net.Listen("tcp", doc.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", doc.Listen, err)
	}
	if err := g.Start(ctx); err != nil {
		ln.Close()
		g.Close()
		return fmt.Errorf("start gateway: %w", err)
	}
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gatehouse serving", "version", Version(), "listen", ln.Addr().String(),
		"upstreams", len(doc.Upstreams), "virtual_servers", len(doc.VirtualServers))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			reload(log, g, *path, *listen, *dataDir, *logLevel)
		case err := <-errc:
			g.Close()
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			// Closing agent sessions first ends their long-lived streams,
			// which would otherwise hold Shutdown open until its deadline.
			g.Close()
			err := srv.Shutdown(sctx)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		}
	}
}

func reload(log *slog.Logger, g *proxy.Gateway, path, listen, dataDir, logLevel string) {
	if path == "" {
		log.Warn("SIGHUP ignored: no configuration file")
		return
	}
	doc, err := loadConfig(path, listen, dataDir, logLevel)
	if err != nil {
		log.Error("reload failed; keeping the running configuration", "error", err)
		return
	}
	old := g.Snapshot().Doc
	if doc.Listen != old.Listen || doc.DataDir != old.DataDir {
		log.Warn("listen and data_dir changes take effect at the next restart")
	}
	warnAnonymous(log, doc)
	if err := g.Apply(doc); err != nil {
		log.Error("reload failed; keeping the running configuration", "error", err)
		return
	}
	log.Info("configuration reloaded", "revision", g.Snapshot().Revision)
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
