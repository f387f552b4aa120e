-- Signed checkpoints of each node's hash chain: after event seq, the
-- chain's hash was hash, and the node's key signed
-- audit.CheckpointMessage(node, seq, hash). A verifier replays the
-- events of a node up to seq and compares. Checkpoints are small and are
-- the proof that the trail was not rewritten, so they have no TTL.
-- ReplacingMergeTree on (node, seq): a checkpoint written twice is kept
-- once.
CREATE TABLE IF NOT EXISTS {{.DB}}audit_checkpoints {{.OnCluster}}
(
    node      LowCardinality(String),
    seq       UInt64,
    hash      String,
    time      DateTime64(6, 'UTC'),
    signature String
)
ENGINE = {{.Engine "ReplacingMergeTree"}}
ORDER BY (node, seq)
SETTINGS non_replicated_deduplication_window = 1000;

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS {{.DB}}audit_checkpoints_all {{.OnCluster}}
AS {{.DB}}audit_checkpoints
ENGINE = Distributed({{.ClusterLiteral}}, {{.DatabaseExpr}}, audit_checkpoints);
{{- end}}
