package chschema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/schema"
)

// ErrChecksumMismatch is wrapped by [Migrate] when a file that was
// already applied has changed since.
var ErrChecksumMismatch = fmt.Errorf("applied schema file changed")

// File is one versioned schema file.
type File struct {
	Version  int
	Name     string // file name, e.g. 001_audit_events.sql
	Text     string // unrendered
	Checksum string // hex SHA-256 of Text
}

// migrationsVersion is the file that creates schema_migrations: applied
// (idempotently) on every run, before the table is read.
const migrationsVersion = 0

var fileName = regexp.MustCompile(`^(\d{3,})_[a-z0-9_]+\.sql$`)

// Files are the schema files of fsys (schema.ClickHouse layout: a
// clickhouse directory of NNN_name.sql), in version order.
func Files(fsys fs.FS) ([]File, error) {
	entries, err := fs.ReadDir(fsys, "clickhouse")
	if err != nil {
		return nil, fmt.Errorf("reading schema files: %w", err)
	}
	var files []File
	seen := map[int]string{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("schema file %s: want NNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("schema file %s: %w", e.Name(), err)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("schema files %s and %s have the same version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join("clickhouse", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading schema file %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		files = append(files, File{Version: v, Name: e.Name(), Text: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Version < files[j].Version })
	if len(files) == 0 || files[0].Version != migrationsVersion {
		return nil, fmt.Errorf("schema files: want %03d_schema_migrations.sql first", migrationsVersion)
	}
	return files, nil
}

// Migrate brings backend's schema up to date with the embedded schema
// files ([schema.ClickHouse]) and returns the names of the files it
// applied, in order. See [MigrateFS].
func Migrate(ctx context.Context, backend audit.Backend, opts Options) (applied []string, err error) {
	return MigrateFS(ctx, backend, schema.ClickHouse, opts)
}

// MigrateFS brings backend's schema up to date with the schema files of
// fsys:
//
//  1. it creates the database (Options.Database) and schema_migrations,
//     if needed;
//  2. it applies, in version order, each file not yet recorded in
//     schema_migrations, statement by statement, and records it once all
//     of its statements succeeded (the DDL uses IF NOT EXISTS, so a file
//     interrupted halfway is applied again whole);
//  3. it fails, naming the file, if a recorded file's checksum differs
//     from the file's now (an applied file must never change: add a new
//     one), without applying anything after it;
//  4. it changes the TTL of every table whose TTL keeps a different
//     number of days than Options.RetentionDays (ALTER TABLE ... MODIFY
//     TTL, which also rewrites the TTL information of existing parts).
//
// It is idempotent: a second run applies nothing. Gateways starting at
// the same time may apply the same file twice, which the IF NOT EXISTS
// statements make harmless.
func MigrateFS(ctx context.Context, backend audit.Backend, fsys fs.FS, opts Options) (applied []string, err error) {
	files, err := Files(fsys)
	if err != nil {
		return nil, err
	}
	if opts.Database != "" {
		stmt := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(opts.Database) + " " + opts.template().OnCluster
		if err := backend.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("creating database %s: %w", opts.Database, err)
		}
	}
	if err := apply(ctx, backend, files[0], opts); err != nil {
		return nil, err
	}
	done, err := appliedVersions(ctx, backend, opts)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if sum, ok := done[f.Version]; ok {
			if sum != f.Checksum {
				return applied, fmt.Errorf("schema file %s (version %d): %w since it was applied (checksum %s, recorded %s); add a new file instead of editing an applied one",
					f.Name, f.Version, ErrChecksumMismatch, short(f.Checksum), short(sum))
			}
			continue
		}
		if f.Version != migrationsVersion {
			if err := apply(ctx, backend, f, opts); err != nil {
				return applied, err
			}
		}
		if err := record(ctx, backend, f, opts); err != nil {
			return applied, err
		}
		applied = append(applied, f.Name)
	}
	if err := applyRetention(ctx, backend, opts); err != nil {
		return applied, err
	}
	return applied, nil
}

func apply(ctx context.Context, backend audit.Backend, f File, opts Options) error {
	stmts, err := Render(f.Name, f.Text, opts)
	if err != nil {
		return err
	}
	for i, s := range stmts {
		if err := backend.Exec(ctx, s); err != nil {
			return fmt.Errorf("applying schema file %s, statement %d: %w", f.Name, i+1, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, backend audit.Backend, opts Options) (map[int]string, error) {
	res, err := backend.Query(ctx, "SELECT version, argMax(checksum, applied_at) FROM "+opts.Table("schema_migrations")+" GROUP BY version ORDER BY version", audit.QueryOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	done := make(map[int]string, len(res.Rows))
	for _, r := range res.Rows {
		if len(r) != 2 {
			return nil, fmt.Errorf("reading schema_migrations: row has %d columns, want 2", len(r))
		}
		v, ok := r[0].(int64)
		sum, ok2 := r[1].(string)
		if !ok || !ok2 {
			return nil, fmt.Errorf("reading schema_migrations: unexpected row %v", r)
		}
		done[int(v)] = sum
	}
	return done, nil
}

func record(ctx context.Context, backend audit.Backend, f File, opts Options) error {
	stmt := fmt.Sprintf("INSERT INTO %s (version, name, checksum, applied_at) VALUES (%d, %s, %s, now64(3))",
		opts.Table("schema_migrations"), f.Version, quoteString(f.Name), quoteString(f.Checksum))
	if err := backend.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("recording schema file %s: %w", f.Name, err)
	}
	return nil
}

// ttlDays finds a TTL of whole days in a table's engine_full, as
// ClickHouse normalizes it: "TTL toDateTime(time) + toIntervalDay(400)".
var ttlDays = regexp.MustCompile(`\bTTL (.+?) \+ (?:toIntervalDay\((\d+)\)|INTERVAL (\d+) DAY)`)

// applyRetention changes the TTL of every table of the database whose
// TTL is a number of days other than the configured retention.
func applyRetention(ctx context.Context, backend audit.Backend, opts Options) error {
	db := "currentDatabase()"
	if opts.Database != "" {
		db = quoteString(opts.Database)
	}
	res, err := backend.Query(ctx, "SELECT name, engine_full FROM system.tables WHERE database = "+db+
		" AND engine LIKE '%MergeTree' AND position(engine_full, ' TTL ') > 0 ORDER BY name", audit.QueryOptions{})
	if err != nil {
		return fmt.Errorf("reading table TTLs: %w", err)
	}
	want := opts.retention()
	for _, r := range res.Rows {
		if len(r) != 2 {
			return fmt.Errorf("reading table TTLs: row has %d columns, want 2", len(r))
		}
		name, _ := r[0].(string)
		engine, _ := r[1].(string)
		m := ttlDays.FindStringSubmatch(engine)
		if m == nil {
			continue // a TTL this runner did not write
		}
		days, _ := strconv.Atoi(m[2] + m[3])
		if days == want {
			continue
		}
		stmt := fmt.Sprintf("ALTER TABLE %s %s MODIFY TTL %s + INTERVAL %d DAY",
			opts.Table(quoteIdent(name)), opts.template().OnCluster, m[1], want)
		if err := backend.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("changing retention of %s from %d to %d days: %w", name, days, want, err)
		}
	}
	return nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return strings.TrimSpace(sum)
}
