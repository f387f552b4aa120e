package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chserver"
	"github.com/gatehouse-dev/gatehouse/internal/audit/spool"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// Environment variables of the audit trail.
const (
	EnvClickHouseAddr     = "GATEHOUSE_CLICKHOUSE_ADDR"
	EnvClickHousePassword = "GATEHOUSE_CLICKHOUSE_PASSWORD"
)

// Audit backends.
const (
	AuditEmbedded   = "embedded"
	AuditClickHouse = "clickhouse"
	AuditOff        = "off"
)

// auditFlags are serve's flags for the audit trail.
type auditFlags struct {
	backend, node           string
	chdbLib                 string
	engineNice              int
	addr, database, user    string
	passwordFile, cluster   string
	tls                     bool
	ca, serverName          string
	fsync, onFull           string
	budget                  string
	retentionDays           int
	batchSize               int
	batchWait, checkpointIv time.Duration
	fsyncInterval           time.Duration
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.backend, "audit", "", "where the audit trail goes: embedded (ClickHouse engine in DATA_DIR/audit, the default) | clickhouse (a server or cluster: --clickhouse-addr) | off")
	fs.StringVar(&a.node, "audit-node", "", "this gateway's name in audit events and their hash chain (default: the host name)")
	fs.StringVar(&a.chdbLib, "chdb-lib", "", "path of libchdb.so for the embedded engine (default $GATEHOUSE_CHDB_LIB, else next to the binary or in ../lib, else .cache/chdb of the checkout the current directory is in; 'make chdb' installs it there)")
	fs.StringVar(&a.addr, "clickhouse-addr", "", "ClickHouse native-protocol addresses host:9000[,host:9000…] (default $"+EnvClickHouseAddr+"); implies --audit clickhouse")
	fs.StringVar(&a.database, "clickhouse-database", "", "ClickHouse database for the audit tables (created if missing; default: the user's default database)")
	fs.StringVar(&a.user, "clickhouse-user", "", "ClickHouse user (default: default)")
	fs.StringVar(&a.passwordFile, "clickhouse-password-file", "", "file holding the ClickHouse password (default $"+EnvClickHousePassword+")")
	fs.StringVar(&a.cluster, "clickhouse-cluster", "", "ClickHouse cluster name: replicated tables ON CLUSTER and a Distributed table for queries")
	fs.BoolVar(&a.tls, "clickhouse-tls", false, "connect to ClickHouse over TLS (implied by --clickhouse-ca)")
	fs.StringVar(&a.ca, "clickhouse-ca", "", "PEM CA bundle that verifies the ClickHouse servers (default: system roots)")
	fs.StringVar(&a.serverName, "clickhouse-tls-server-name", "", "server name to verify instead of each address's host")
	fs.StringVar(&a.fsync, "audit-fsync", spool.FsyncInterval, "when spooled audit events reach the disk: interval (written before each call is acknowledged, fsynced every --audit-fsync-interval: a process crash loses nothing) | always (group commit before each call is acknowledged: power loss loses nothing)")
	fs.DurationVar(&a.fsyncInterval, "audit-fsync-interval", spool.DefaultFsyncInterval, "with --audit-fsync interval: how often spooled events are fsynced, so at most what power loss can lose (a process crash loses nothing either way); each fsync costs the gateway CPU: 1s instead of 100ms took ≈ 4% off its CPU per call at half load")
	fs.StringVar(&a.budget, "audit-spool-budget", "1GiB", "disk budget for audit events not yet shipped (while ClickHouse is down); 0 = unlimited")
	fs.StringVar(&a.onFull, "audit-on-full", spool.OnFullRefuse, "at the spool budget: refuse (new calls fail with -32058 until events ship: nothing goes unaudited) | drop (calls proceed, events are dropped, loudly)")
	fs.IntVar(&a.retentionDays, "audit-retention-days", chschema.DefaultRetentionDays, "how long ClickHouse keeps audit events and rollups (TTL)")
	fs.IntVar(&a.batchSize, "audit-batch-size", 0, fmt.Sprintf("events per insert into ClickHouse, at most; a batch also goes at %d MiB, and is held in memory while it fills (default 30,000 with the embedded engine, whose inserts cost the gateway's CPU, ≈ 30 %% less per event in batches of 40,000 than of 10,000; 10,000 with a server)", audit.MaxBatchBytes>>20))
	fs.DurationVar(&a.batchWait, "audit-batch-wait", 0, "longest an event waits for its batch to fill before it is shipped, so how soon queries see it (default 5s with the embedded engine, whose inserts cost the gateway's CPU, 40–60% less per event in batches of 5,000 than of 1,000; 1s with a server)")
	fs.IntVar(&a.engineNice, "audit-engine-nice", 10, "nice value (1-19) of the embedded ClickHouse engine's threads and of the threads that call into it (it parses and writes an insert on the calling thread), so that inserts and merges on the gateway's cores yield to calls in flight (10 instead of 0 took the added p99 at half load from +43-152 ms to +16-36 ms in the load harness); 0 = the gateway's priority")
	fs.DurationVar(&a.checkpointIv, "audit-checkpoint-interval", time.Minute, "how often (at least) a signed checkpoint of the hash chain is stored")
}

// auditRuntime is the running audit trail of a process.
type auditRuntime struct {
	writer  *audit.Writer
	backend audit.Backend
	schema  chschema.Options
}

// api is the read side over the runtime's backend: the tables it writes,
// and this node's checkpoint key.
func (r *auditRuntime) api() *audit.API {
	return &audit.API{Backend: r.backend, Tables: r.schema.Tables(),
		Keys: map[string]ed25519.PublicKey{r.writer.Node(): r.writer.PublicKey()}}
}

// sink is where the gateway records requests: the writer, or nil with
// the audit trail off (r nil).
func (r *auditRuntime) sink() proxy.AuditSink {
	if r == nil {
		return nil
	}
	return r.writer
}

func (r *auditRuntime) close() {
	if r == nil {
		return
	}
	if err := r.writer.Close(); err != nil {
		slog.Warn("closing the audit spool", "error", err)
	}
	_ = r.backend.Close()
}

// embeddedBatchWait is the embedded engine's default --audit-batch-wait.
// Its inserts run on the gateway's cores, and an insert of 5,000 or more
// events costs the engine 40–60% less CPU per event than one of 1,000
// (BenchmarkInsert), so the embedded engine waits longer for bigger
// batches than a server, which has cores of its own.
const embeddedBatchWait = 5 * time.Second

// embeddedBatchSize is the embedded engine's default --audit-batch-size:
// at 4,000 calls/s a 5 s batch holds 20,000 events, and the engine's CPU
// per event keeps falling with the batch's size (BenchmarkInsertJSON:
// ≈ 45,000 events per CPU-second in batches of 10,000, ≈ 65,000 in
// batches of 40,000). A batch also stops at 64 MiB, the shipper's limit.
const embeddedBatchSize = 30_000

// start opens the backend and the writer; nil (and no error) with --audit
// off.
func (a *auditFlags) start(ctx context.Context, log *slog.Logger, dataDir string) (*auditRuntime, error) {
	backend := a.backend
	addr := firstNonEmpty(a.addr, os.Getenv(EnvClickHouseAddr))
	switch {
	case backend == "" && addr != "":
		backend = AuditClickHouse
	case backend == "":
		backend = AuditEmbedded
	}
	if backend == AuditOff {
		log.Warn("the audit trail is off (--audit off): requests are not recorded")
		return nil, nil
	}
	budget, err := parseBytes(a.budget)
	if err != nil {
		return nil, usageError{fmt.Errorf("--audit-spool-budget: %w", err)}
	}
	if budget == 0 {
		budget = -1 // the spool's "no limit"
	}
	// Flags are checked before the backend opens: a usage error must not
	// leave an engine open behind it.
	if a.batchWait < 0 {
		return nil, usageError{errors.New("--audit-batch-wait must not be negative")}
	}
	if a.engineNice < 0 || a.engineNice > 19 {
		return nil, usageError{fmt.Errorf("--audit-engine-nice %d: want 0 (the gateway's priority) to 19", a.engineNice)}
	}
	if a.fsyncInterval <= 0 {
		return nil, usageError{errors.New("--audit-fsync-interval must be positive")}
	}
	if a.batchSize < 0 {
		return nil, usageError{errors.New("--audit-batch-size must not be negative")}
	}
	opts := chschema.Options{Cluster: a.cluster, RetentionDays: a.retentionDays, Database: a.database}
	var b audit.Backend
	switch backend {
	case AuditEmbedded:
		if a.cluster != "" || a.database != "" {
			return nil, usageError{errors.New("--clickhouse-cluster and --clickhouse-database need --audit clickhouse")}
		}
		b, err = chdb.Open(ctx, chdb.Options{LibPath: firstNonEmpty(a.chdbLib, os.Getenv(chdb.EnvLib)), DataDir: filepath.Join(dataDir, "audit", "chdb"), Nice: a.engineNice})
		if err != nil {
			return nil, fmt.Errorf("%w (or use --audit clickhouse with --clickhouse-addr, or --audit off)", err)
		}
	case AuditClickHouse:
		if addr == "" {
			return nil, usageError{errors.New("--audit clickhouse needs --clickhouse-addr (or $" + EnvClickHouseAddr + ")")}
		}
		co := chserver.Options{Addr: strings.Split(addr, ","), Database: a.database, Username: a.user,
			Password: os.Getenv(EnvClickHousePassword)}
		if a.passwordFile != "" {
			p, err := os.ReadFile(a.passwordFile)
			if err != nil {
				return nil, fmt.Errorf("clickhouse password: %w", err)
			}
			co.Password = strings.TrimSpace(string(p))
		}
		if a.tls || a.ca != "" || a.serverName != "" {
			co.TLS = &chserver.TLSOptions{CAFile: a.ca, ServerName: a.serverName}
		}
		if b, err = chserver.Open(ctx, co); err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
	default:
		return nil, usageError{fmt.Errorf("--audit %q: want embedded, clickhouse or off", backend)}
	}
	if a.batchWait == 0 {
		a.batchWait = time.Second
		if backend == AuditEmbedded {
			a.batchWait = embeddedBatchWait
		}
	}
	if a.batchSize == 0 {
		a.batchSize = 10_000
		if backend == AuditEmbedded {
			a.batchSize = embeddedBatchSize
		}
	}
	migrate := func(ctx context.Context, b audit.Backend) error {
		applied, err := chschema.Migrate(ctx, b, opts)
		if len(applied) > 0 {
			log.Info("audit schema migrated", "backend", b.Name(), "applied", applied)
		}
		return err
	}
	// Migrate now, so the tables exist when the gateway serves; a server
	// that is down does not stop the start: the shipper migrates when it
	// answers, and events wait in the spool meanwhile.
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := migrate(mctx, b); err != nil {
		log.Warn("audit schema not migrated yet; events wait in the spool until ClickHouse answers", "backend", b.Name(), "error", err)
	}
	cancel()
	w, err := audit.OpenWriter(ctx, audit.WriterOptions{
		Dir:       filepath.Join(dataDir, "audit"),
		Node:      a.node,
		Spool:     spool.Options{Fsync: a.fsync, FsyncInterval: a.fsyncInterval, BudgetBytes: budget, OnFull: a.onFull},
		Backend:   b,
		Migrate:   migrate,
		BatchSize: a.batchSize, BatchWait: a.batchWait, CheckpointInterval: a.checkpointIv,
		Tables: opts.Tables(),
		Logger: log,
	})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return &auditRuntime{writer: w, backend: b, schema: opts}, nil
}

// parseBytes reads sizes like 1GiB, 512MiB, 100MB, 4096.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 1GiB, 500MB)", s)
	}
	return n * mult, nil
}
