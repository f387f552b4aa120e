// Package store opens Gatehouse's config store (SQLite by default,
// PostgreSQL at scale) through the Ent client in
// [github.com/gatehouse-dev/gatehouse/ent], migrates its schema, and bridges
// it to the declarative YAML document ([config.Document]): [ExportDocument]
// builds the document from the store and [ApplyDocument] makes the store
// hold a document (optionally pruning what it lacks, or as a dry run).
//
// Every change to the configuration is recorded in the admin change log
// (the AdminChange entity), in the transaction of the change; [Revision],
// the latest entry's ID, tells gateways polling the store when to reload
// (see changelog.go).
//
// SQLite uses the pure-Go driver modernc.org/sqlite (no cgo) with foreign
// keys on and the WAL journal; PostgreSQL uses pgx through database/sql.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers database/sql driver "pgx"
	_ "modernc.org/sqlite"             // registers database/sql driver "sqlite"

	"github.com/gatehouse-dev/gatehouse/ent"
	_ "github.com/gatehouse-dev/gatehouse/ent/runtime" // schema defaults, validators and hooks
)

// Open connects to the config store at url and migrates its schema to the
// current one. url is one of
//
//	sqlite:///abs/path/gatehouse.db   (or sqlite://rel/path.db)
//	/abs/or/relative/path.db          (a plain path means SQLite)
//	postgres://user:pass@host:5432/db?sslmode=disable   (or postgresql://)
//
// A SQLite file and its directory are created if missing. Migration is
// additive: new tables, columns and indexes are created; nothing is dropped,
// so a store written by an older Gatehouse opens and keeps its data (enum
// values that an earlier schema spelled differently are rewritten in place:
// see legacyValues).
//
// Every change the client makes to the configuration is recorded in the
// admin change log (AdminChange), in the change's transaction; [Revision]
// reads the latest entry's ID. A secret binding the transport of its
// upstream cannot take is refused (see secrets.go).
//
// Close the returned client when done.
func Open(ctx context.Context, url string) (*ent.Client, error) {
	drv, err := openDriver(ctx, url)
	if err != nil {
		return nil, err
	}
	// Ent's migration prepares the package-level table descriptions in
	// place (ent/migrate.Tables), so two migrations must not run at once
	// in one process.
	migrateMu.Lock()
	err = ent.NewClient(ent.Driver(drv)).Schema.Create(ctx)
	migrateMu.Unlock()
	if err == nil {
		err = migrateValues(ctx, drv)
	}
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("migrate config store schema: %w", err)
	}
	client := ent.NewClient(ent.Driver(txRouter{drv}))
	client.Use(changeLog(drv))
	client.SecretBinding.Use(bindingTransportHook)
	client.VirtualServer.Use(deleteOwnedByVirtualServer)
	client.Agent.Use(deleteOwnedByAgent)
	client.Team.Use(refuseTeamWithAgents)
	return client, nil
}

var migrateMu sync.Mutex

// legacyValues rewrites enum values that earlier schemas stored under other
// words, in place: guardrail rules' stage input/output (now direction
// request/response), detector secret (now secrets) and action warn (now
// flag). The statements are idempotent, so every Open runs them; they change
// words, not meaning, so they are not in the admin change log.
var legacyValues = []string{
	`UPDATE guardrail_rules SET stage = 'request' WHERE stage = 'input'`,
	`UPDATE guardrail_rules SET stage = 'response' WHERE stage = 'output'`,
	`UPDATE guardrail_rules SET detector = 'secrets' WHERE detector = 'secret'`,
	`UPDATE guardrail_rules SET action = 'flag' WHERE action = 'warn'`,
}

func migrateValues(ctx context.Context, drv *entsql.Driver) error {
	for _, stmt := range legacyValues {
		if _, err := drv.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("rewrite legacy values: %w", err)
		}
	}
	return nil
}

// openDriver opens the database behind url without migrating it.
func openDriver(ctx context.Context, url string) (*entsql.Driver, error) {
	var (
		db      *sql.DB
		dialect string
		err     error
	)
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		dialect = dialectPostgres
		db, err = sql.Open("pgx", url)
	case url == "":
		return nil, errors.New("open config store: empty URL (want sqlite:///path/file.db, a file path, or postgres://...)")
	case strings.Contains(url, "://") && !strings.HasPrefix(url, "sqlite://"):
		scheme, _, _ := strings.Cut(url, "://")
		return nil, fmt.Errorf("open config store: unsupported scheme %q (want sqlite or postgres)", scheme)
	default:
		dialect = dialectSQLite
		var path string
		path, err = sqlitePath(url)
		if err != nil {
			return nil, err
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("open config store: create directory: %w", err)
			}
		}
		db, err = sql.Open("sqlite", sqliteDSN(path))
	}
	if err != nil {
		return nil, fmt.Errorf("open config store: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open config store: connect: %w", err)
	}
	return entsql.OpenDB(dialect, db), nil
}

const (
	dialectSQLite   = dialect.SQLite // "sqlite3": ent's name for the SQLite dialect, whatever the driver
	dialectPostgres = dialect.Postgres
)

// sqlitePath returns the file path of a sqlite:// URL or plain path.
func sqlitePath(url string) (string, error) {
	path := strings.TrimPrefix(url, "sqlite://")
	if path == "" {
		return "", errors.New("open config store: sqlite URL has no path (want sqlite:///path/file.db)")
	}
	if strings.ContainsAny(path, "?#") {
		return "", fmt.Errorf("open config store: SQLite path %q must not contain '?' or '#'", path)
	}
	return path, nil
}

// sqliteDSN is the modernc.org/sqlite data source for a file: every pooled
// connection gets foreign keys (ent relies on them for cascades and refuses
// to migrate without), the WAL journal (readers never block the writer), a
// busy timeout, and write-intent transactions (BEGIN IMMEDIATE), so that two
// concurrent transactions wait for each other instead of failing on upgrade.
func sqliteDSN(path string) string {
	return "file:" + strings.ReplaceAll(path, "%", "%25") +
		"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}
