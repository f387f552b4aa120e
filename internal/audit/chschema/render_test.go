package chschema_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
	"github.com/gatehouse-dev/gatehouse/schema"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"", nil},
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1;\n\nSELECT 2;\n", []string{"SELECT 1", "SELECT 2"}},
		{"-- only a comment;\n", nil},
		{"SELECT ';' AS a; SELECT `x;y`", []string{"SELECT ';' AS a", "SELECT `x;y`"}},
		{"SELECT 'it\\'s;'; SELECT 2", []string{"SELECT 'it\\'s;'", "SELECT 2"}},
		{"-- a; b\nSELECT 1 /* c; d */;", []string{"-- a; b\nSELECT 1 /* c; d */"}},
		{"SELECT 1; -- trailing; comment", []string{"SELECT 1"}},
		{"SELECT \"a;b\" FROM t", []string{"SELECT \"a;b\" FROM t"}},
	}
	for _, tc := range tests {
		if got := chschema.SplitStatements(tc.sql); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitStatements(%q) = %q, want %q", tc.sql, got, tc.want)
		}
	}
}

// render renders every schema file and returns all statements joined.
func render(t *testing.T, o chschema.Options) string {
	t.Helper()
	files, err := chschema.Files(schema.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range files {
		stmts, err := chschema.Render(f.Name, f.Text, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(stmts) == 0 {
			t.Errorf("%s renders no statement", f.Name)
		}
		all = append(all, stmts...)
	}
	return strings.Join(all, ";\n")
}

func TestRenderSingleNode(t *testing.T) {
	sql := render(t, chschema.Options{})
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS audit_events \n(",
		"ENGINE = MergeTree\nPARTITION BY toYYYYMM(time)",
		"TTL toDateTime(time) + INTERVAL 400 DAY",
		"ENGINE = AggregatingMergeTree",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS audit_rollup_minute_mv \nTO audit_rollup_minute",
		"FROM audit_events\nWHERE kind = 'request'",
		"ENGINE = ReplacingMergeTree\nORDER BY (node, seq)",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("single-node DDL lacks %q", want)
		}
	}
	for _, not := range []string{"ON CLUSTER", "= Replicated", "Distributed(", "_all", "{{", "<no value>"} {
		if strings.Contains(sql, not) {
			t.Errorf("single-node DDL contains %q", not)
		}
	}
}

func TestRenderCluster(t *testing.T) {
	o := chschema.Options{Cluster: "audit", Database: "gatehouse", RetentionDays: 90}
	sql := render(t, o)
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `gatehouse`.audit_events ON CLUSTER `audit`",
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')",
		"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')",
		"TTL toDateTime(time) + INTERVAL 90 DAY",
		"TTL minute + INTERVAL 90 DAY",
		"CREATE TABLE IF NOT EXISTS `gatehouse`.audit_events_all ON CLUSTER `audit`\nAS `gatehouse`.audit_events\nENGINE = Distributed('audit', 'gatehouse', audit_events, cityHash64(node))",
		"ENGINE = Distributed('audit', 'gatehouse', audit_rollup_minute)",
		"ENGINE = Distributed('audit', 'gatehouse', audit_checkpoints)",
		"TO `gatehouse`.audit_rollup_minute",
		"FROM `gatehouse`.audit_events\n",
		"CREATE TABLE IF NOT EXISTS `gatehouse`.schema_migrations ON CLUSTER `audit`",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("cluster DDL lacks %q", want)
		}
	}
	if strings.Contains(sql, "ENGINE = MergeTree") || strings.Contains(sql, "currentDatabase()") {
		t.Errorf("cluster DDL has a non-replicated engine or an unqualified database:\n%s", sql)
	}
	if got := o.EventsTable(); got != "`gatehouse`.audit_events_all" {
		t.Errorf("EventsTable() = %s", got)
	}
	if got := (chschema.Options{}).EventsTable(); got != "audit_events" {
		t.Errorf("EventsTable() = %s", got)
	}
	if got := (chschema.Options{Cluster: "c"}).RollupTable(); got != "audit_rollup_minute_all" {
		t.Errorf("RollupTable() = %s", got)
	}
}

func TestRenderClusterWithoutDatabase(t *testing.T) {
	sql := render(t, chschema.Options{Cluster: "c"})
	if !strings.Contains(sql, "Distributed('c', currentDatabase(), audit_events, cityHash64(node))") {
		t.Errorf("Distributed without a database:\n%s", sql)
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := chschema.Render("x.sql", "{{.Nope}}", chschema.Options{}); err == nil || !strings.Contains(err.Error(), "x.sql") {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := chschema.Render("y.sql", "{{", chschema.Options{}); err == nil || !strings.Contains(err.Error(), "y.sql") {
		t.Errorf("bad template: %v", err)
	}
}

func TestValueHelpers(t *testing.T) {
	if got := chschema.TupleElems("Array(Tuple(rule String, `end` UInt32, m Map(String, Array(UInt8))))"); got != nil {
		t.Errorf("TupleElems of an Array = %v", got)
	}
	got := chschema.TupleElems(chschema.ArrayElem("Array(Tuple(rule String, `end` UInt32, m Map(String, Array(UInt8))))"))
	want := []chschema.TupleElem{{"rule", "String"}, {"end", "UInt32"}, {"m", "Map(String, Array(UInt8))"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TupleElems = %#v", got)
	}
	if got := chschema.TupleElems("Tuple(String, DateTime64(6, 'UTC'))"); !reflect.DeepEqual(got, []chschema.TupleElem{{"", "String"}, {"", "DateTime64(6, 'UTC')"}}) {
		t.Errorf("unnamed TupleElems = %#v", got)
	}
	if got := chschema.MapValue("Map(LowCardinality(String), Array(UInt64))"); got != "Array(UInt64)" {
		t.Errorf("MapValue = %q", got)
	}
	for typ, want := range map[string]int{"DateTime64(6, 'UTC')": 6, "Nullable(DateTime64(3))": 3, "DateTime": 0, "DateTime('UTC')": 0} {
		if got, ok := chschema.TimeScale(typ); !ok || got != want {
			t.Errorf("TimeScale(%s) = %d, %v", typ, got, ok)
		}
	}
	if _, ok := chschema.TimeScale("Date"); ok {
		t.Error("Date is not a date-time")
	}
	if chschema.Uint(1<<53) != int64(1<<53) || chschema.Uint(1<<53+1) != "9007199254740993" || chschema.Int(-(1<<53)-1) != "-9007199254740993" {
		t.Error("Int/Uint at 2^53")
	}
}
