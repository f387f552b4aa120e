package chschema_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gatehouse-dev/gatehouse/internal/audit/chdb/chdbtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
	"github.com/gatehouse-dev/gatehouse/schema"
)

// copyFS is the embedded schema as a MapFS, for tests that change it.
func copyFS(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(schema.ClickHouse, "clickhouse", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(schema.ClickHouse, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFiles(t *testing.T) {
	files, err := chschema.Files(schema.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		if f.Version != i {
			t.Errorf("file %s has version %d, want %d (versions are consecutive)", f.Name, f.Version, i)
		}
		if len(f.Checksum) != 64 {
			t.Errorf("%s checksum %q", f.Name, f.Checksum)
		}
	}
	for name, data := range map[string]string{"clickhouse/4_short.sql": "SELECT 1", "clickhouse/004_Upper.sql": "SELECT 1", "clickhouse/003_dup.sql": "SELECT 1"} {
		m := copyFS(t)
		m[name] = &fstest.MapFile{Data: []byte(data)}
		if _, err := chschema.Files(m); err == nil {
			t.Errorf("adding %s: no error", name)
		}
	}
}

// TestMigrateChanges runs migrations on the embedded engine through
// schema changes: a new file is applied alone, an edited applied file is
// refused by name.
func TestMigrateChanges(t *testing.T) {
	ctx := context.Background()
	b := chdbtest.Open(t, "")
	m := copyFS(t)
	applied, err := chschema.MigrateFS(ctx, b, m, chschema.Options{})
	if err != nil || len(applied) != len(m) {
		t.Fatalf("first run: %v, %v", applied, err)
	}

	m["clickhouse/099_extra.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS {{.DB}}extra {{.OnCluster}} (a UInt8) ENGINE = {{.Engine \"MergeTree\"}} ORDER BY a;\nINSERT INTO {{.DB}}extra VALUES (1);")}
	applied, err = chschema.MigrateFS(ctx, b, m, chschema.Options{})
	if err != nil || !slices.Equal(applied, []string{"099_extra.sql"}) {
		t.Fatalf("new file: applied %v, %v", applied, err)
	}

	m["clickhouse/002_rollup_minute.sql"].Data = append(m["clickhouse/002_rollup_minute.sql"].Data, "\n-- edited\n"...)
	m["clickhouse/100_after.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE after (a UInt8) ENGINE = Memory")}
	applied, err = chschema.MigrateFS(ctx, b, m, chschema.Options{})
	if !errors.Is(err, chschema.ErrChecksumMismatch) || !strings.Contains(err.Error(), "002_rollup_minute.sql") {
		t.Fatalf("edited file: %v, want a checksum mismatch naming 002_rollup_minute.sql", err)
	}
	if len(applied) != 0 {
		t.Errorf("applied %v despite the mismatch", applied)
	}
	if _, err := b.Query(ctx, "SELECT 1 FROM after", auditQuery); err == nil {
		t.Error("a file after the mismatch was applied")
	}

	// A failing statement fails the run, names the file, and the file is
	// not recorded: the next run tries it again.
	delete(m, "clickhouse/100_after.sql")
	m["clickhouse/002_rollup_minute.sql"].Data = mustRead(t, "clickhouse/002_rollup_minute.sql")
	m["clickhouse/101_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE bad (a UInt8) ENGINE = Memory; SELECT nonsense(")}
	if _, err := chschema.MigrateFS(ctx, b, m, chschema.Options{}); err == nil || !strings.Contains(err.Error(), "101_bad.sql, statement 2") {
		t.Fatalf("bad file: %v", err)
	}
	m["clickhouse/101_bad.sql"].Data = []byte("CREATE TABLE IF NOT EXISTS bad (a UInt8) ENGINE = Memory")
	if applied, err := chschema.MigrateFS(ctx, b, m, chschema.Options{}); err == nil || !errors.Is(err, chschema.ErrChecksumMismatch) {
		// The failed file was never recorded, so changing it is allowed.
		if err != nil || !slices.Equal(applied, []string{"101_bad.sql"}) {
			t.Fatalf("fixed file: %v, %v", applied, err)
		}
	} else {
		t.Fatalf("fixed file: %v", err)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(schema.ClickHouse, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMigrateDatabase applies the schema into a database of its own.
func TestMigrateDatabase(t *testing.T) {
	ctx := context.Background()
	b := chdbtest.Open(t, "")
	o := chschema.Options{Database: "gatehouse audit", RetentionDays: 7}
	if _, err := chschema.Migrate(ctx, b, o); err != nil {
		t.Fatal(err)
	}
	if applied, err := chschema.Migrate(ctx, b, o); err != nil || len(applied) != 0 {
		t.Fatalf("second run: %v, %v", applied, err)
	}
	res, err := b.Query(ctx, "SELECT name FROM system.tables WHERE database = 'gatehouse audit' ORDER BY name", auditQuery)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res.Rows {
		names = append(names, r[0].(string))
	}
	want := []string{"audit_checkpoints", "audit_events", "audit_rollup_minute", "audit_rollup_minute_mv", "schema_migrations"}
	if !slices.Equal(names, want) {
		t.Errorf("tables %v, want %v", names, want)
	}
	res, err = b.Query(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE 'audit%'", auditQuery)
	if err != nil || res.Rows[0][0] != int64(0) {
		t.Errorf("tables outside the database: %v, %v", res, err)
	}
}
