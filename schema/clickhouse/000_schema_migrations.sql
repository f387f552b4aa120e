-- The migrations applied to this database: one row per file of
-- schema/clickhouse, written after all of its statements succeeded.
-- chschema.Migrate creates this table before it reads it, on every run.
-- ReplacingMergeTree: two gateways starting at once may both record a
-- version; readers group by version.
CREATE TABLE IF NOT EXISTS {{.DB}}schema_migrations {{.OnCluster}}
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = {{.Engine "ReplacingMergeTree"}}
ORDER BY version;
