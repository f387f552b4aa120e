// Package chschema applies Gatehouse's ClickHouse schema (the files of
// schema/clickhouse) to an audit [audit.Backend], and holds what both
// backends share about it: the event columns and how result values look.
//
// # Files and templates
//
// Each schema/clickhouse/NNN_name.sql is a text/template rendered with
// [Template] before it runs, so one file serves a single node and a
// cluster:
//
//	{{.DB}}             "" or "`gatehouse`." (Options.Database), prefixed to every table name
//	{{.OnCluster}}      "" or "ON CLUSTER `name`" (Options.Cluster)
//	{{.Engine "X"}}     X, or ReplicatedX('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
//	{{.Cluster}}        the cluster name, "" on a single node (for {{if .Cluster}})
//	{{.ClusterLiteral}} the cluster name as a string literal, for Distributed(...)
//	{{.DatabaseExpr}}   'gatehouse' or currentDatabase(), for Distributed(...)
//	{{.RetentionDays}}  days events and rollups are kept (TTL)
//
// A rendered file is split into statements at semicolons (outside quotes
// and comments) and each runs with [audit.Backend.Exec].
//
// In cluster mode the tables are Replicated* on every node (the macros
// {shard} and {replica} must be defined in the servers' configuration),
// and a Distributed table NAME_all sits over each: the shipper inserts
// into the local table of the node it is connected to, queries read the
// _all tables ([Options.EventsTable]).
package chschema

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// DefaultRetentionDays is how long events and rollups are kept when
// [Options.RetentionDays] is zero.
const DefaultRetentionDays = 400

// Options say where and how the schema is applied. The zero value is a
// single node, the connection's current database and the default
// retention.
type Options struct {
	// Cluster names the ClickHouse cluster (remote_servers) to create
	// replicated tables on, with ON CLUSTER; empty means a single node.
	Cluster string
	// RetentionDays is the TTL of events and rollups; zero means
	// [DefaultRetentionDays]. A change is applied to existing tables
	// (ALTER TABLE ... MODIFY TTL) by [Migrate].
	RetentionDays int
	// Database holds the tables; empty means the connection's current
	// database and unqualified names. When set, Migrate creates it and
	// every table name is qualified with it: whoever inserts and queries
	// must then use [Options.Table].
	Database string
}

func (o Options) retention() int {
	if o.RetentionDays <= 0 {
		return DefaultRetentionDays
	}
	return o.RetentionDays
}

// Table is name qualified with [Options.Database], if any.
func (o Options) Table(name string) string {
	if o.Database == "" {
		return name
	}
	return quoteIdent(o.Database) + "." + name
}

// Tables are the tables the audit writer inserts into and the read side
// queries, in these options.
func (o Options) Tables() audit.Tables {
	return audit.Tables{Insert: o.Table("audit_events"), Checkpoints: o.Table("audit_checkpoints"),
		Events: o.EventsTable(), ReadCheckpoints: o.CheckpointsTable()}
}

// EventsTable is the table to query events from: audit_events on a single
// node, the Distributed audit_events_all in a cluster.
func (o Options) EventsTable() string { return o.Table(o.readTable("audit_events")) }

// RollupTable is the table to query per-minute rollups from.
func (o Options) RollupTable() string { return o.Table(o.readTable("audit_rollup_minute")) }

// CheckpointsTable is the table to query checkpoints from.
func (o Options) CheckpointsTable() string { return o.Table(o.readTable("audit_checkpoints")) }

func (o Options) readTable(local string) string {
	if o.Cluster != "" {
		return local + "_all"
	}
	return local
}

// Template is what a schema file is rendered with.
type Template struct {
	// DB is "" or the quoted database and a dot.
	DB string
	// OnCluster is "" or "ON CLUSTER `name`".
	OnCluster string
	// Cluster is the cluster name, "" on a single node.
	Cluster string
	// ClusterLiteral is the cluster name as a string literal.
	ClusterLiteral string
	// DatabaseExpr is the database as a string literal, or
	// currentDatabase().
	DatabaseExpr string
	// RetentionDays is the TTL in days.
	RetentionDays int
}

// Engine is the table engine name for a single node, or its Replicated
// variant with the conventional Keeper path in a cluster.
func (t Template) Engine(name string) string {
	if t.Cluster == "" {
		return name
	}
	return "Replicated" + name + "('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
}

func (o Options) template() Template {
	t := Template{RetentionDays: o.retention(), DatabaseExpr: "currentDatabase()"}
	if o.Database != "" {
		t.DB = quoteIdent(o.Database) + "."
		t.DatabaseExpr = quoteString(o.Database)
	}
	if o.Cluster != "" {
		t.Cluster = o.Cluster
		t.OnCluster = "ON CLUSTER " + quoteIdent(o.Cluster)
		t.ClusterLiteral = quoteString(o.Cluster)
	}
	return t
}

// Render renders one schema file for o and splits it into statements.
func Render(name, text string, o Options) ([]string, error) {
	tmpl, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing schema file %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, o.template()); err != nil {
		return nil, fmt.Errorf("rendering schema file %s: %w", name, err)
	}
	return SplitStatements(b.String()), nil
}

// SplitStatements splits SQL text at semicolons outside string literals,
// quoted identifiers and comments. Statements are trimmed; empty ones
// (only whitespace and comments) are dropped.
func SplitStatements(sql string) []string {
	var (
		out     []string
		start   int
		content bool // the current statement has something besides comments
	)
	flush := func(end int) {
		if content {
			out = append(out, strings.TrimSpace(sql[start:end]))
		}
		start, content = end+1, false
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			content = true
			for i++; i < len(sql) && sql[i] != c; i++ {
				if sql[i] == '\\' {
					i++
				}
			}
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-', c == '#':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				i = len(sql)
			} else {
				i += end + 3
			}
		case c == ';':
			flush(i)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			content = true
		}
	}
	if start < len(sql) {
		flush(len(sql))
	}
	return out
}

// quoteIdent is a ClickHouse identifier in backquotes.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}

// quoteString is a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
