package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
)

// Target is a backend under test with the schema options its tables use.
// It must start empty (a fresh data directory or database).
type Target struct {
	Backend audit.Backend
	Schema  chschema.Options
}

// Run runs the suite; open returns a fresh, empty target for each test
// and arranges for it to be cleaned up.
func Run(t *testing.T, open func(t *testing.T) Target) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tg Target)
	}{
		{"Migrate", testMigrate},
		{"Columns", testColumns},
		{"EventsRoundTrip", testEventsRoundTrip},
		{"Dedup", testDedup},
		{"Rollups", testRollups},
		{"Checkpoints", testCheckpoints},
		{"Values", testValues},
		{"ReadOnly", testReadOnly},
		{"AuditorSQL", testAuditorSQL},
		{"MaxRows", testMaxRows},
		{"MaxMemory", testMaxMemory},
		{"Timeout", testTimeout},
		{"Retention", testRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Migrate applies the schema to tg, failing t on error.
func Migrate(t testing.TB, tg Target) []string {
	t.Helper()
	applied, err := chschema.Migrate(context.Background(), tg.Backend, tg.Schema)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return applied
}

// Query runs q, failing t on error.
func Query(t testing.TB, b audit.Backend, q string) *audit.Result {
	t.Helper()
	res, err := b.Query(context.Background(), q, audit.QueryOptions{})
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return res
}

func insert(t testing.TB, tg Target, events []audit.Event, token string) {
	t.Helper()
	if err := tg.Backend.Insert(context.Background(), tg.Schema.Table("audit_events"), events, token); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

func count(t testing.TB, tg Target, table, where string) int64 {
	t.Helper()
	q := "SELECT count() FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	res := Query(t, tg.Backend, q)
	if len(res.Rows) != 1 {
		t.Fatalf("%s: %d rows", q, len(res.Rows))
	}
	n, ok := res.Rows[0][0].(int64)
	if !ok {
		t.Fatalf("%s: count is %T %v", q, res.Rows[0][0], res.Rows[0][0])
	}
	return n
}

func testMigrate(t *testing.T, tg Target) {
	applied := Migrate(t, tg)
	files, err := chschema.Files(schemaFS())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, f.Name)
	}
	if !slices.Equal(applied, want) {
		t.Errorf("first run applied %v, want %v", applied, want)
	}
	if again := Migrate(t, tg); len(again) != 0 {
		t.Errorf("second run applied %v, want nothing", again)
	}
	res := Query(t, tg.Backend, "SELECT version, name, checksum FROM "+tg.Schema.Table("schema_migrations")+" ORDER BY version")
	if len(res.Rows) != len(files) {
		t.Fatalf("schema_migrations has %d rows, want %d: %v", len(res.Rows), len(files), res.Rows)
	}
	for i, r := range res.Rows {
		if r[0] != int64(files[i].Version) || r[1] != files[i].Name || r[2] != files[i].Checksum {
			t.Errorf("schema_migrations row %d = %v, want %d %s %s", i, r, files[i].Version, files[i].Name, files[i].Checksum)
		}
	}
	for _, table := range []string{tg.Schema.EventsTable(), tg.Schema.RollupTable(), tg.Schema.CheckpointsTable()} {
		count(t, tg, table, "")
	}
}

// testColumns checks that the Event's JSON names, chschema.EventColumns
// and the table's columns are the same list.
func testColumns(t *testing.T, tg Target) {
	Migrate(t, tg)
	var tags []string
	et := reflect.TypeFor[audit.Event]()
	for i := range et.NumField() {
		name, _, _ := strings.Cut(et.Field(i).Tag.Get("json"), ",")
		tags = append(tags, name)
	}
	var cols []string
	for _, c := range chschema.EventColumns {
		cols = append(cols, c.Name)
	}
	res := Query(t, tg.Backend, "SELECT name FROM system.columns WHERE database = "+dbExpr(tg.Schema)+" AND table = 'audit_events' ORDER BY position")
	var table []string
	for _, r := range res.Rows {
		table = append(table, r[0].(string))
	}
	if !slices.Equal(tags, cols) {
		t.Errorf("Event JSON names %v\n!= chschema.EventColumns %v", tags, cols)
	}
	if !slices.Equal(table, cols) {
		t.Errorf("audit_events columns %v\n!= chschema.EventColumns %v", table, cols)
	}
}

func dbExpr(o chschema.Options) string {
	if o.Database == "" {
		return "currentDatabase()"
	}
	return "'" + o.Database + "'"
}

// normalized is e as it reads back: UTC, microseconds, empty slices.
func normalized(e audit.Event) audit.Event {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	for _, p := range []*[]string{&e.Roles, &e.Grants, &e.Approvers, &e.SecretBindings, &e.LeaseIDs} {
		if *p == nil {
			*p = []string{}
		}
	}
	if e.Findings == nil {
		e.Findings = []audit.Finding{}
	}
	return e
}

// readEvents reads events back through JSON, the way an API client would.
func readEvents(t testing.TB, tg Target, where string) []audit.Event {
	t.Helper()
	q := "SELECT * FROM " + tg.Schema.EventsTable()
	if where != "" {
		q += " WHERE " + where
	}
	res := Query(t, tg.Backend, q+" ORDER BY node, seq")
	out := make([]audit.Event, len(res.Rows))
	for i, r := range res.Rows {
		m := map[string]any{}
		for j, c := range res.Columns {
			m[c.Name] = r[j]
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			t.Fatalf("row %d: %v\n%s", i, err, b)
		}
		if out[i].Findings == nil {
			out[i].Findings = []audit.Finding{}
		}
	}
	return out
}

// compareEvents reports every field that differs.
func compareEvents(t testing.TB, got, want []audit.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d events, want %d", len(got), len(want))
	}
	et := reflect.TypeFor[audit.Event]()
	errs := 0
	for i := range want {
		w := normalized(want[i])
		g, wv := reflect.ValueOf(got[i]), reflect.ValueOf(w)
		for f := range et.NumField() {
			if !reflect.DeepEqual(g.Field(f).Interface(), wv.Field(f).Interface()) {
				t.Errorf("event %s: %s = %#v, want %#v", w.EventID, et.Field(f).Name, g.Field(f).Interface(), wv.Field(f).Interface())
				if errs++; errs > 20 {
					t.FailNow()
				}
			}
		}
	}
}

func testEventsRoundTrip(t *testing.T, tg Target) {
	Migrate(t, tg)
	// 2026-11-30 23:40 UTC: the batch (36 minutes) crosses into December.
	start := time.Date(2026, 12, 1, 0, 40, 1, 123456789, time.FixedZone("CET", 3600))
	events := Events("node-1", start, 300, 0)
	// A large argument (1 MiB) and an event with every slice nil.
	events[7].Arguments = `{"blob":"` + strings.Repeat("x☃", 1<<18) + `"}`
	events[8].Roles, events[8].Grants, events[8].Findings, events[8].Approvers = nil, nil, nil, nil
	insert(t, tg, events, "roundtrip-1")
	compareEvents(t, readEvents(t, tg, ""), events)

	// Time as a result value: RFC 3339, UTC, six digits.
	res := Query(t, tg.Backend, "SELECT time FROM "+tg.Schema.EventsTable()+" WHERE seq = 1")
	if want := chschema.Time(events[0].Time, 6); res.Rows[0][0] != want {
		t.Errorf("time = %v, want %v", res.Rows[0][0], want)
	}
	if got := res.Columns[0].Type; got != "DateTime64(6, 'UTC')" {
		t.Errorf("time type = %q", got)
	}
	// Findings' elements are subcolumns: findings.detector is an array.
	var withEntropy int64
	for _, e := range events {
		for _, f := range e.Findings {
			if f.Detector == "entropy" {
				withEntropy++
				break
			}
		}
	}
	if n := count(t, tg, tg.Schema.EventsTable(), "has(findings.detector, 'entropy')"); n != withEntropy || n == 0 {
		t.Errorf("has(findings.detector, 'entropy'): %d events, want %d", n, withEntropy)
	}
	// The month boundary in the batch made two partitions.
	res = Query(t, tg.Backend, "SELECT uniqExact(toYYYYMM(time)) FROM "+tg.Schema.EventsTable())
	if res.Rows[0][0] != int64(2) {
		t.Errorf("partitions: %v, want 2", res.Rows[0][0])
	}
}

func testDedup(t *testing.T, tg Target) {
	Migrate(t, tg)
	start := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	a := Events("node-a", start, 500, 0)
	b := Events("node-b", start, 500, 0)
	insert(t, tg, a, "node-a:1-500")
	insert(t, tg, a, "node-a:1-500") // replay after a crash: dropped
	insert(t, tg, b, "node-b:1-500")
	insert(t, tg, a[:10], "node-a:1-10") // another token: kept
	if n := count(t, tg, tg.Schema.EventsTable(), ""); n != 1010 {
		t.Errorf("%d rows after inserting a batch twice with one token, want 1010", n)
	}
}

func testRollups(t *testing.T, tg Target) {
	Migrate(t, tg)
	start := time.Date(2026, 9, 14, 8, 0, 0, 0, time.UTC)
	events := Events("node-1", start, 3000, 0)
	insert(t, tg, events[:1500], "r1")
	insert(t, tg, events[1500:], "r2")
	insert(t, tg, events[:1500], "r1") // deduplicated: must not reach the rollup either
	ev, ru := tg.Schema.EventsTable(), tg.Schema.RollupTable()
	raw := Query(t, tg.Backend, `SELECT toDateTime(toStartOfMinute(time), 'UTC') AS minute, agent, virtual_server, target,
		count(), countIf(outcome = 'denied'), countIf(outcome IN ('error', 'unavailable', 'timeout')),
		countIf(outcome = 'tool_error'), countIf(approval_id != ''), quantiles(0.5, 0.9, 0.99)(total_us)
		FROM `+ev+` WHERE kind = 'request' GROUP BY minute, agent, virtual_server, target
		ORDER BY minute, agent, virtual_server, target`)
	rolled := Query(t, tg.Backend, `SELECT minute, agent, virtual_server, target,
		sum(calls), sum(denials), sum(errors), sum(tool_errors), sum(approvals), quantilesMerge(0.5, 0.9, 0.99)(latency_us)
		FROM `+ru+` GROUP BY minute, agent, virtual_server, target
		ORDER BY minute, agent, virtual_server, target`)
	if len(raw.Rows) == 0 {
		t.Fatal("no raw rows")
	}
	if !reflect.DeepEqual(raw.Rows, rolled.Rows) {
		t.Errorf("rollups differ from raw events: %d vs %d groups", len(rolled.Rows), len(raw.Rows))
		for i := range min(len(raw.Rows), len(rolled.Rows)) {
			if !reflect.DeepEqual(raw.Rows[i], rolled.Rows[i]) {
				t.Fatalf("group %d: raw %v, rollup %v", i, raw.Rows[i], rolled.Rows[i])
			}
		}
	}
	totals := Query(t, tg.Backend, "SELECT sum(calls), sum(denials), sum(errors), sum(tool_errors), sum(approvals) FROM "+ru)
	var want [5]int64
	for _, e := range events {
		if e.Kind != audit.KindRequest {
			continue
		}
		want[0]++
		switch e.Outcome {
		case audit.OutcomeDenied:
			want[1]++
		case audit.OutcomeError, audit.OutcomeUnavailable, audit.OutcomeTimeout:
			want[2]++
		case audit.OutcomeToolError:
			want[3]++
		}
		if e.ApprovalID != "" {
			want[4]++
		}
	}
	for i, w := range want {
		if totals.Rows[0][i] != w {
			t.Errorf("rollup total %d = %v, want %d (counted in Go)", i, totals.Rows[0][i], w)
		}
	}
}

func testCheckpoints(t *testing.T, tg Target) {
	Migrate(t, tg)
	ctx := context.Background()
	for range 2 { // a checkpoint written twice is kept once
		stmt := "INSERT INTO " + tg.Schema.Table("audit_checkpoints") + " (node, seq, hash, time, signature) VALUES ('node-1', 1000, 'ab12', '2026-11-30 10:00:00.123456', 'sig')"
		if err := tg.Backend.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	res := Query(t, tg.Backend, "SELECT node, seq, hash, time, signature FROM "+tg.Schema.CheckpointsTable()+" FINAL")
	want := [][]any{{"node-1", int64(1000), "ab12", "2026-11-30T10:00:00.123456Z", "sig"}}
	if !reflect.DeepEqual(res.Rows, want) {
		t.Errorf("checkpoints = %v, want %v", res.Rows, want)
	}
}

// testValues checks the result conventions of chschema (values.go).
func testValues(t *testing.T, tg Target) {
	res := Query(t, tg.Backend, `SELECT toUInt64(9007199254740993) AS big, toUInt64(42) AS small, toInt64(-5) AS neg,
		toInt8(-1) AS i8, 18446744073709551615 AS max, toFloat64(1.5) AS f, toFloat64(2) AS f2, nan AS n,
		toDateTime64('2026-01-02 03:04:05.5', 3, 'UTC') AS t3, toDateTime('2026-01-02 03:04:05', 'UTC') AS t0,
		toDate('2026-01-02') AS d, 'ü' AS s, [1, 2] AS a, CAST(('x', 1), 'Tuple(a String, b UInt8)') AS tup,
		CAST(NULL, 'Nullable(String)') AS nul, true AS b, CAST([2, 2.5], 'Array(Float64)') AS af,
		map('k', toUInt64(9007199254740993)) AS m, [toDateTime64('2026-01-02 03:04:05', 6, 'UTC')] AS at`)
	want := []any{"9007199254740993", int64(42), int64(-5), int64(-1), "18446744073709551615", 1.5, 2.0, nil,
		"2026-01-02T03:04:05.500Z", "2026-01-02T03:04:05Z", "2026-01-02", "ü", []any{int64(1), int64(2)},
		map[string]any{"a": "x", "b": int64(1)}, nil, true, []any{2.0, 2.5},
		map[string]any{"k": "9007199254740993"}, []any{"2026-01-02T03:04:05.000000Z"}}
	if len(res.Rows) != 1 {
		t.Fatalf("rows: %v", res.Rows)
	}
	for i, w := range want {
		if g := res.Rows[0][i]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s (%s) = %#v, want %#v", res.Columns[i].Name, res.Columns[i].Type, g, w)
		}
	}
	if got := res.Columns[0]; got != (audit.Column{Name: "big", Type: "UInt64"}) {
		t.Errorf("column 0 = %+v", got)
	}
}

func testReadOnly(t *testing.T, tg Target) {
	Migrate(t, tg)
	insert(t, tg, Events("n", time.Now(), 3, 0), "ro")
	ctx := context.Background()
	ro := audit.QueryOptions{ReadOnly: true}
	if _, err := tg.Backend.Query(ctx, "SELECT count() FROM "+tg.Schema.EventsTable(), ro); err != nil {
		t.Fatalf("read-only SELECT: %v", err)
	}
	table := tg.Schema.Table("audit_events")
	for _, q := range []string{
		"INSERT INTO " + table + " (event_id) VALUES ('x')",
		"DROP TABLE " + table,
		"TRUNCATE TABLE " + table,
		"ALTER TABLE " + table + " DELETE WHERE 1",
		"CREATE TABLE evil (a UInt8) ENGINE = Memory",
		"SELECT 1 SETTINGS readonly = 0",
	} {
		if _, err := tg.Backend.Query(ctx, q, ro); err == nil {
			t.Errorf("read-only query %q succeeded", q)
		}
	}
	// A read-only query cannot lift its limits.
	_, err := tg.Backend.Query(ctx, "SELECT number FROM numbers(10) SETTINGS max_result_rows = 0", audit.QueryOptions{ReadOnly: true, MaxRows: 5})
	if err == nil {
		t.Errorf("a read-only query lifted max_result_rows")
	}
	if n := count(t, tg, tg.Schema.EventsTable(), ""); n != 3 {
		t.Errorf("%d events after read-only attempts, want 3", n)
	}
}

// testAuditorSQL: an auditor's SQL reads the audit tables and nothing
// else, however it is spelled (found probing the endpoint: file() read
// any file the gateway could, the admin token included, and backquotes or
// comments hid system tables from the text check).
func testAuditorSQL(t *testing.T, tg Target) {
	Migrate(t, tg)
	insert(t, tg, Events("n", time.Now(), 3, 0), "sql")
	ctx := context.Background()
	events := tg.Schema.EventsTable()
	query := func(q string) (*audit.Result, error) {
		return audit.Query(ctx, tg.Backend, q, audit.QueryOptions{MaxRows: 100, Timeout: 10 * time.Second, MaxMemory: 64 << 20})
	}
	if res, err := query("SELECT count() FROM " + events); err != nil || len(res.Rows) != 1 {
		t.Fatalf("a plain count: %v %v", res, err)
	}
	if _, err := query("WITH recent AS (SELECT * FROM " + events + " WHERE time > now() - INTERVAL 1 DAY) SELECT count() FROM recent"); err != nil {
		t.Errorf("a WITH name: %v", err)
	}
	// The right side of IN may name a WITH table, and elements of
	// tuples are not tables.
	if _, err := query("WITH ids AS (SELECT event_id FROM " + events + ") SELECT count() FROM " + events + " WHERE event_id IN ids" +
		" AND has(arrayMap(f -> f.kind, findings), 'x') = 0"); err != nil {
		t.Errorf("IN an audit table, a lambda's tuple element: %v", err)
	}
	for _, q := range []string{
		"SELECT file('/etc/passwd') FROM " + events + " LIMIT 1",
		"SELECT FILE('/etc/passwd') FROM " + events + " LIMIT 1",
		"SELECT name FROM " + events + ", `system`.`tables` GROUP BY name",
		"SELECT name FROM " + events + ", system/**/./**/tables GROUP BY name",
		"SELECT 1 FROM (SELECT * FROM " + events + ") AS t, system.one",
		"SELECT dictGet('d', 'a', toUInt64(1)) FROM " + events,
		"SELECT * FROM " + events + " WHERE event_id IN (SELECT name FROM `system`.`users`)",
		"SELECT * FROM " + events + " WHERE 1 IN (SELECT 1 FROM url('http://127.0.0.1:1/x', 'CSV', 'a UInt8'))",
		"SELECT joinGet('j', 'v', 1) FROM " + events,
		"SELECT count() FROM merge('.*')",
		// IN names a table without FROM (found probing: a yes/no oracle
		// on any system table, and IN system.numbers took 5 GB).
		"SELECT count() FROM " + events + " WHERE toUInt8(0) IN system.one",
		"SELECT count() FROM " + events + " WHERE 0 NOT IN `system`.`one`",
		"SELECT count() FROM " + events + " WHERE toUInt64(1) GLOBAL IN system.numbers",
		"SELECT count() FROM " + events + " WHERE (1 IN (2, 3)) AND 0 IN INFORMATION_SCHEMA.TABLES",
		"SELECT count() FROM " + events + " WHERE 0 IN one",
	} {
		if _, err := query(q); !errors.Is(err, audit.ErrRefused) {
			t.Errorf("%s: %v, want refused", q, err)
		}
	}
}

// testMaxMemory: a query that would take more memory than MaxMemory is
// stopped.
func testMaxMemory(t *testing.T, tg Target) {
	ctx := context.Background()
	_, err := tg.Backend.Query(ctx, "SELECT count() FROM (SELECT groupArray(number) FROM numbers(50000000))",
		audit.QueryOptions{ReadOnly: true, MaxMemory: 32 << 20, Timeout: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "MEMORY_LIMIT_EXCEEDED") {
		t.Fatalf("a query over MaxMemory: err = %v, want MEMORY_LIMIT_EXCEEDED", err)
	}
	if _, err := tg.Backend.Query(ctx, "SELECT 1", audit.QueryOptions{}); err != nil {
		t.Fatal(err)
	}
}

func testMaxRows(t *testing.T, tg Target) {
	ctx := context.Background()
	res, err := tg.Backend.Query(ctx, "SELECT number FROM numbers(10)", audit.QueryOptions{ReadOnly: true, MaxRows: 10})
	if err != nil || len(res.Rows) != 10 {
		t.Fatalf("10 rows with MaxRows 10: %v, %v", res, err)
	}
	_, err = tg.Backend.Query(ctx, "SELECT number FROM numbers(100000)", audit.QueryOptions{ReadOnly: true, MaxRows: 10})
	if err == nil || !strings.Contains(err.Error(), "TOO_MANY_ROWS") {
		t.Fatalf("100,000 rows with MaxRows 10: err = %v, want TOO_MANY_ROWS", err)
	}
}

// slowQuery runs for minutes unless stopped.
const slowQuery = "SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))"

func testTimeout(t *testing.T, tg Target) {
	ctx := context.Background()
	t0 := time.Now()
	_, err := tg.Backend.Query(ctx, slowQuery, audit.QueryOptions{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "TIMEOUT_EXCEEDED") {
		t.Fatalf("slow query with Timeout: err = %v, want TIMEOUT_EXCEEDED", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow query with Timeout and no deadline: %v is context.DeadlineExceeded", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("timeout after %v", d)
	}
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = tg.Backend.Query(dctx, slowQuery, audit.QueryOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow query with a context deadline: err = %v, want context.DeadlineExceeded", err)
	}
	// The backend is usable afterwards.
	if _, err := tg.Backend.Query(ctx, "SELECT 1", audit.QueryOptions{}); err != nil {
		t.Fatal(err)
	}
}

func testRetention(t *testing.T, tg Target) {
	Migrate(t, tg)
	ttl := func() map[string]string {
		res := Query(t, tg.Backend, "SELECT name, engine_full FROM system.tables WHERE database = "+dbExpr(tg.Schema)+" AND position(engine_full, ' TTL ') > 0 ORDER BY name")
		m := map[string]string{}
		for _, r := range res.Rows {
			e := r[1].(string)
			i := strings.Index(e, " TTL ")
			m[r[0].(string)], _, _ = strings.Cut(e[i+5:], " SETTINGS")
		}
		return m
	}
	wantDays := func(days int) {
		t.Helper()
		got := ttl()
		for _, table := range []string{"audit_events", "audit_rollup_minute"} {
			if !strings.Contains(got[table], fmt.Sprintf("toIntervalDay(%d)", days)) {
				t.Errorf("%s TTL = %q, want %d days", table, got[table], days)
			}
		}
	}
	wantDays(chschema.DefaultRetentionDays)
	o := tg.Schema
	o.RetentionDays = 30
	if applied, err := chschema.Migrate(context.Background(), tg.Backend, o); err != nil || len(applied) != 0 {
		t.Fatalf("migrate with 30 days: %v, %v", applied, err)
	}
	wantDays(30)
	if t.Failed() {
		t.Logf("TTLs: %v", ttl())
	}
	// Events older than the retention go at the next merge.
	insert(t, tg, Events("old", time.Now().AddDate(0, 0, -90), 5, 0), "old")
	insert(t, tg, Events("new", time.Now().Add(-time.Hour), 5, 0), "new")
	if err := tg.Backend.Exec(context.Background(), "OPTIMIZE TABLE "+tg.Schema.Table("audit_events")+" FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tg, tg.Schema.EventsTable(), ""); n != 5 {
		t.Errorf("%d events after OPTIMIZE with a 30-day TTL, want the 5 recent ones", n)
	}
}
