// Package schema holds Gatehouse's versioned database schemas as files,
// embedded in the binary.
//
// ClickHouse holds the audit trail: clickhouse/NNN_name.sql, applied in
// order by internal/audit/chschema, which renders each file as a
// text/template first (see that package for the fields a file may use)
// and records it in schema_migrations. An applied file never changes: a
// change is a new file.
package schema

import "embed"

// ClickHouse is the audit trail's DDL: clickhouse/NNN_name.sql.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS
