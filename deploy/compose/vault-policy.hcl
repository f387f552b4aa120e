# The Vault policy Gatehouse needs (README.md of the gateway, "Just-in-time
# secrets"): read the paths secret bindings name, revoke its leases. Narrow
# the paths to the ones your bindings use.
path "secret/data/*" {
  capabilities = ["read"]
}
path "database/creds/*" {
  capabilities = ["read"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
