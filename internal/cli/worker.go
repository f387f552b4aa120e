package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-dev/gatehouse/proxy"
)

const workerUsage = `Usage: gatehouse worker --temporal-address HOST:PORT [flags]

Runs approval workflows (ToolCallWorkflow and its activities) without
serving agents: a worker on an external Temporal cluster, next to the
gateways that hold the agents' calls. It reads the configuration from the
same config store as the gateways (--database-url), connects to the
upstreams to run approved calls, and follows configuration changes. Approved
calls get their secrets from Vault here, after approval: give the worker the
same --vault-* flags as the gateways. The approval steps it runs are
recorded in its own audit trail (--audit*, its own node in the hash chain;
point --clickhouse-addr at the gateways' ClickHouse to keep one trail).

Every gateway started by serve also runs a worker; a standalone one adds
capacity or keeps approved calls running while gateways restart. With the
embedded Temporal server (no --temporal-address) workflows only run inside
the serve process that embeds it.

Flags:
`

func workerCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file for the process settings (log, data_dir, http), YAML (default $"+EnvConfig+")")
	dataDir := fs.String("data-dir", "", "data directory (default $"+EnvDataDir+", else the file's data_dir)")
	logLevel := fs.String("log-level", "", "debug | info | warn | error")
	dbURL := fs.String("database-url", "", "config store shared with the gateways (default $"+EnvDatabaseURL+", else DATA_DIR/gatehouse.db)")
	poll := fs.Duration("store-poll", time.Second, "how often to check the config store for changes")
	var tf temporalFlags
	tf.register(fs, false)
	var vf vaultFlags
	vf.register(fs)
	var af auditFlags
	af.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), workerUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if tf.address == "" {
		return usageError{errors.New("worker needs --temporal-address: an embedded Temporal server only serves the gateway process that runs it")}
	}
	if *poll <= 0 {
		return usageError{errors.New("--store-poll must be positive")}
	}
	file, err := loadConfig(*path, "", *dataDir, *logLevel)
	if err != nil {
		return err
	}
	log, _, client, err := openProcess(ctx, file, *dbURL, stderr)
	if err != nil {
		return err
	}
	defer client.Close()
	vault, err := vf.start(ctx, log)
	if err != nil {
		return err
	}
	defer vault.Close()
	auditRT, err := af.start(ctx, log, file.DataDir)
	if err != nil {
		return err
	}
	defer auditRT.close()
	sink := auditRT.sink()
	syncer := newConfigSync(log, client, processSettings(file), "", [3]string{"", *dataDir, *logLevel})
	syncer.poll = *poll
	doc, rev, err := syncer.load(ctx)
	if err != nil {
		return err
	}
	syncer.rev, syncer.pinning = rev, doc.Pinning.Mode
	g := proxy.New(doc, &proxy.Options{Logger: log, Secrets: vault})
	if err := g.Start(ctx); err != nil {
		g.Close()
		return fmt.Errorf("start gateway: %w", err)
	}
	defer g.Close()
	syncer.g = g
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go syncer.run(syncCtx)
	tf.hold, tf.worker = time.Minute, true // a worker holds no agent calls
	rt, err := startApprovals(ctx, log, client, g, &tf, file.DataDir, sink, false)
	if err != nil {
		return fmt.Errorf("approval workflows: %w", err)
	}
	defer rt.close()
	log.Info("gatehouse worker running", "version", Version(), "upstreams", len(doc.Upstreams))
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}
