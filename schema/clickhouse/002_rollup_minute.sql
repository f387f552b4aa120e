-- Per-minute rollups of agent requests, kept up to date by a
-- materialized view at insert time, for dashboards and rate questions
-- that must not scan raw events.
--
-- The counters are SimpleAggregateFunction(sum, UInt64): read them with
-- sum(). Latency is a quantiles state: read it with
-- quantilesMerge(0.5, 0.9, 0.99)(latency_us).
--
-- Exactly once: a batch the events table drops as a duplicate (same
-- insert_deduplication_token) still runs through the view (ClickHouse
-- 24+; verified on chDB 26.7), and the view's block carries a token
-- derived from the batch's. So this table keeps a deduplication window
-- too, and inserts set deduplicate_blocks_in_dependent_materialized_views
-- = 1 (the default on recent servers): without both, a replayed batch
-- is counted twice here.
CREATE TABLE IF NOT EXISTS {{.DB}}audit_rollup_minute {{.OnCluster}}
(
    minute         DateTime('UTC'),
    agent          LowCardinality(String),
    virtual_server LowCardinality(String),
    target         String,
    calls          SimpleAggregateFunction(sum, UInt64),
    denials        SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    tool_errors    SimpleAggregateFunction(sum, UInt64),
    approvals      SimpleAggregateFunction(sum, UInt64),
    latency_us     AggregateFunction(quantiles(0.5, 0.9, 0.99), UInt64)
)
ENGINE = {{.Engine "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(minute)
ORDER BY (agent, virtual_server, target, minute)
TTL minute + INTERVAL {{.RetentionDays}} DAY
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}audit_rollup_minute_mv {{.OnCluster}}
TO {{.DB}}audit_rollup_minute
AS SELECT
    toStartOfMinute(time)                          AS minute,
    agent,
    virtual_server,
    target,
    count()                                        AS calls,
    countIf(outcome IN ('denied', 'blocked', 'rate_limited', 'approval_required')) AS denials,
    countIf(outcome IN ('error', 'unavailable', 'timeout', 'secret_unavailable', 'approval_unavailable', 'audit_unavailable')) AS errors,
    countIf(outcome = 'tool_error')                AS tool_errors,
    countIf(approval_id != '')                     AS approvals,
    quantilesState(0.5, 0.9, 0.99)(total_us)       AS latency_us
FROM {{.DB}}audit_events
WHERE kind = 'request'
GROUP BY minute, agent, virtual_server, target;

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS {{.DB}}audit_rollup_minute_all {{.OnCluster}}
AS {{.DB}}audit_rollup_minute
ENGINE = Distributed({{.ClusterLiteral}}, {{.DatabaseExpr}}, audit_rollup_minute);
{{- end}}
