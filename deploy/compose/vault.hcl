# Vault for the compose deployment: one node, file storage in the vault-data
# volume, listening on the compose network only (no published port). Use TLS
# (tls_cert_file/tls_key_file, and --vault-ca-cert on Gatehouse) as soon as
# anything outside this host talks to it; for HA use integrated storage
# (raft) with three or five nodes: see docs/operations.md.
storage "file" {
  path = "/vault/file"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

# mlock needs IPC_LOCK, which the container does not get; use encrypted swap
# or no swap on the host instead.
disable_mlock = true
ui            = false
