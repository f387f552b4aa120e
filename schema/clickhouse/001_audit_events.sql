-- One row per audited action: audit.Event, whose JSON field names are the
-- column names (the embedded engine inserts JSONEachRow, the server
-- backend appends the columns of chschema.EventColumns).
--
-- ORDER BY (agent, target, time, event_id): the common questions are
-- "what did this agent do (to this tool) between t1 and t2" and "who
-- called this tool". The primary index serves the first directly; agents
-- are few, so ClickHouse's generic exclusion search also prunes on
-- target (and time) without an agent. event_id last makes the order
-- total. Partitions are months: a time range prunes whole partitions,
-- and parts entirely past the TTL are dropped without a rewrite.
-- request_id, session_id and approval_id lookups use bloom filters. The
-- TTL converts to DateTime: older servers accept only Date or DateTime
-- TTL expressions (chDB 26.7 takes DateTime64 too).
--
-- Deduplication: the shipper inserts each spool batch with
-- insert_deduplication_token; the table remembers the tokens of its last
-- 10,000 blocks (non_replicated_deduplication_window on a single node,
-- replicated_deduplication_window in Keeper in a cluster), so a batch
-- re-sent after a crash (same token) is dropped. The window is shared by
-- all nodes: at one batch per node and second, 10 nodes keep ~16 minutes
-- of tokens, far more than a restart takes.
--
-- LowCardinality on the columns with few distinct values (node, kind,
-- agent, team, auth_method, virtual_server, upstream, method, decision,
-- outcome, rule): dictionary-encoded, cheap to filter and group by. The
-- arrays are plain Array(String): short lists, where dictionaries would
-- add work to every insert and merge for little space. Time is Delta + ZSTD
-- (near-sorted microseconds), arguments and error ZSTD(3) (JSON and
-- text compress well), everything else ClickHouse's default LZ4.
--
-- findings is Array(Tuple(...)) with named elements: JSONEachRow reads
-- the JSON array of objects as is and JSON output writes it back the
-- same way (input/output_format_json_named_tuples_as_objects, both on by
-- default). Nested would flatten it into parallel arrays, which the
-- JSON array of objects does not map onto.
CREATE TABLE IF NOT EXISTS {{.DB}}audit_events {{.OnCluster}}
(
    time            DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id        String,
    node            LowCardinality(String),
    seq             UInt64 CODEC(Delta, ZSTD(1)),
    prev_hash       String CODEC(ZSTD(1)),
    hash            String CODEC(ZSTD(1)),

    kind            LowCardinality(String),
    request_id      String,
    session_id      String,

    agent           LowCardinality(String),
    team            LowCardinality(String),
    roles           Array(String),
    auth_method     LowCardinality(String),

    virtual_server  LowCardinality(String),
    upstream        LowCardinality(String),
    method          LowCardinality(String),
    target          String,
    arguments       String CODEC(ZSTD(3)),
    args_hash       String,

    decision        LowCardinality(String),
    grants          Array(String),
    rule            LowCardinality(String),
    policy_revision Int64,
    findings        Array(Tuple(
                        rule String,
                        detector String,
                        kind String,
                        path String,
                        action String,
                        start UInt32,
                        `end` UInt32)),

    approval_id     String,
    approvers       Array(String),
    secret_bindings Array(String),
    lease_ids       Array(String),

    outcome         LowCardinality(String),
    error_code      Int32,
    error           String CODEC(ZSTD(3)),

    auth_us         UInt32,
    policy_us       UInt32,
    guard_us        UInt32,
    approval_us     UInt64,
    upstream_us     UInt64,
    total_us        UInt64,

    request_bytes   UInt64,
    response_bytes  UInt64,

    INDEX request_id_idx request_id TYPE bloom_filter GRANULARITY 4,
    INDEX session_id_idx session_id TYPE bloom_filter GRANULARITY 4,
    INDEX approval_id_idx approval_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = {{.Engine "MergeTree"}}
PARTITION BY toYYYYMM(time)
ORDER BY (agent, target, time, event_id)
TTL toDateTime(time) + INTERVAL {{.RetentionDays}} DAY
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

{{if .Cluster -}}
-- Cluster mode: the shipper inserts into the local replicated table of
-- the node it is connected to; queries read every shard through this one.
CREATE TABLE IF NOT EXISTS {{.DB}}audit_events_all {{.OnCluster}}
AS {{.DB}}audit_events
ENGINE = Distributed({{.ClusterLiteral}}, {{.DatabaseExpr}}, audit_events, cityHash64(node));
{{- end}}
