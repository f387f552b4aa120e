#!/usr/bin/env bash
# run.sh is `make run`: it starts the demo upstream and Gatehouse in front of
# it on embedded defaults, and prints how to connect. State lives in
# ./data/demo (git-ignored); the demo agent's key is generated once and kept
# there, so restarting keeps the same key.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/bin"
DATA="${GATEHOUSE_DATA_DIR:-$ROOT/data/demo}"
LISTEN="${GATEHOUSE_LISTEN:-127.0.0.1:8080}"
DEMO_ADDR="${DEMO_ADDR:-127.0.0.1:18081}"
mkdir -p "$DATA"
chmod 700 "$DATA"

KEYFILE="$DATA/demo-agent.key"
if [[ ! -s "$KEYFILE" ]]; then
  "$BIN/gatehouse" keygen | awk '/^key:/ {print $2}' >"$KEYFILE"
  chmod 600 "$KEYFILE"
fi
KEY="$(cat "$KEYFILE")"

# The admin API's bootstrap token, made once and kept with the store.
ADMIN_TOKEN_FILE="$DATA/admin.token"
if [[ ! -s "$ADMIN_TOKEN_FILE" ]]; then
  "$BIN/gatehouse" keygen --admin >"$ADMIN_TOKEN_FILE"
  chmod 600 "$ADMIN_TOKEN_FILE"
fi
ADMIN_TOKEN="$(cat "$ADMIN_TOKEN_FILE")"

CONFIG="$DATA/gatehouse.yaml"
cat >"$CONFIG" <<YAML
# Written by deploy/demo/run.sh (make run). It seeds the config store
# ($DATA/gatehouse.db) on first start; after that the store wins: change it
# through http://$LISTEN/graphql or gatehouse apply -f, or edit this file and
# send SIGHUP to merge it into the store (what it does not mention, such as
# what was made through /graphql, is left alone).
listen: $LISTEN
data_dir: $DATA
log: {level: info, format: text}
upstreams:
  - name: demo
    transport: streamable-http
    url: http://$DEMO_ADDR/mcp
  - name: demo-stdio
    transport: stdio
    command: $BIN/demo-server
    args: [-transport, stdio, -name, demo-stdio]
virtual_servers:
  - name: demo
    description: Demo tools from two upstreams
    include:
      - {upstream: demo}
      - {upstream: demo-stdio, tools: [echo], rename: {echo: echo_stdio}, resources: [], resource_templates: [], prompts: []}
agents:
  - name: demo-agent
    team: demo
    api_keys: [{file: $KEYFILE}]
grants:
  # Default deny: nothing is usable until a grant allows it.
  - name: demo-team
    subject: {team: demo}
    target: {virtual_server: demo, tools: ["*"], resources: ["*"], prompts: ["*"]}
    effect: allow
  - name: no-failing-tool-on-weekends
    subject: {team: demo}
    target: {virtual_server: demo, tools: [fail]}
    effect: deny
    when: 'request.time.getDayOfWeek() == 0 || request.time.getDayOfWeek() == 6'
approval_rules:
  # Human approval: a deploy to prod waits until an admin approves it.
  - name: prod-deploys
    description: Deploys to prod wait for an admin's approval
    approver_groups: [admin]
    tools: [deploy]
    when: 'args.env == "prod"'
guardrails:
  - {name: redact-secrets, detector: secrets, action: redact}
  - {name: flag-pii, detector: pii, action: flag}
  - {name: block-injection, direction: response, detector: injection, action: block}
YAML

# make run VAULT=1: a Vault dev server (bin/vault, loopback only, in memory)
# holds the demo agent's own upstream credential; a secret binding injects
# it, just in time, as the Authorization header of the demo upstream's
# requests. The agent never sees it.
VAULT_ARGS=()
if [[ "${VAULT:-0}" == 1 ]]; then
  VAULT_ADDR_DEMO="${VAULT_ADDR_DEMO:-127.0.0.1:18200}"
  export VAULT_ADDR="http://$VAULT_ADDR_DEMO"
  ROOT_TOKEN="demo-root-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  "$BIN/vault" server -dev -dev-root-token-id="$ROOT_TOKEN" -dev-listen-address="$VAULT_ADDR_DEMO" >"$DATA/vault.log" 2>&1 &
  VAULT_PID=$!
  for _ in $(seq 100); do VAULT_TOKEN="$ROOT_TOKEN" "$BIN/vault" status >/dev/null 2>&1 && break; sleep 0.1; done
  export VAULT_TOKEN="$ROOT_TOKEN"
  "$BIN/vault" policy write gatehouse - >/dev/null <<'HCL'
path "secret/data/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
HCL
  DEMO_SECRET="ghp_demo$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  "$BIN/vault" kv put secret/agents/demo-agent/github token="$DEMO_SECRET" >/dev/null
  GATEHOUSE_VAULT_TOKEN="$("$BIN/vault" token create -policy=gatehouse -period=1h -field=token)"
  export GATEHOUSE_VAULT_TOKEN
  unset VAULT_TOKEN
  cat >>"$CONFIG" <<YAML
secret_bindings:
  # Just in time from Vault: each agent's own token, as a bearer header.
  - name: demo-github-token
    upstream: demo
    source: kv
    path: "secret/agents/{{.agent}}/github"
    per_principal: true
    key: token
    injection: header
    target: Authorization
    template: "Bearer {{.Value}}"
YAML
  VAULT_ARGS=(--vault-addr "$VAULT_ADDR")
fi

"$BIN/demo-server" -transport streamable-http -addr "$DEMO_ADDR" -name demo >"$DATA/demo-server.log" 2>&1 &
DEMO_PID=$!
trap 'kill $DEMO_PID ${VAULT_PID:-} 2>/dev/null || true' EXIT

URL="http://$LISTEN/mcp/demo"
cat <<TXT

  Gatehouse demo
  ──────────────
  Agent endpoint (streamable HTTP): $URL
  Legacy SSE endpoint:              http://$LISTEN/sse/demo
  Demo API key:                     $KEY
  Health / metrics:                 http://$LISTEN/readyz   http://$LISTEN/metrics
  Config file (edit, then kill -HUP to merge it into the store): $CONFIG

  Web console (approvals, audit explorer, overview): http://$LISTEN/console/
    sign in with the admin token below

  Admin API (GraphQL; open it in a browser for a query page):
    http://$LISTEN/graphql      admin token: $ADMIN_TOKEN
    curl -sS http://$LISTEN/graphql -H 'Authorization: Bearer $ADMIN_TOKEN' \\
      -H 'Content-Type: application/json' -d '{"query":"{ upstreams { edges { node { name transport url } } } }"}'
    GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN $BIN/gatehouse export --server http://$LISTEN

  MCP client configuration:
    Cursor, Claude Code (.mcp.json):
      {"mcpServers": {"gatehouse-demo": {"type": "http", "url": "$URL",
        "headers": {"Authorization": "Bearer $KEY"}}}}
    VS Code (.vscode/mcp.json):
      {"servers": {"gatehouse-demo": {"type": "http", "url": "$URL",
        "headers": {"Authorization": "Bearer $KEY"}}}}

  Or with curl:
    curl -sS $URL \\
      -H 'Authorization: Bearer $KEY' \\
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'

  Human approval (embedded Temporal): call tool deploy with {"service": "api", "env": "prod"};
  the call waits (up to 5 min) while you decide it:
    export GATEHOUSE_SERVER=http://$LISTEN GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN
    $BIN/gatehouse approvals list
    $BIN/gatehouse approvals approve <apr-ID>     # or: deny <apr-ID> --reason "..."

TXT
cat <<TXT
  Audit trail (embedded ClickHouse engine in $DATA/audit): every request above is recorded;
    GATEHOUSE_SERVER=http://$LISTEN GATEHOUSE_ADMIN_TOKEN=$ADMIN_TOKEN \\
      $BIN/gatehouse audit query "SELECT time, agent, method, target, outcome FROM audit_events ORDER BY time DESC LIMIT 20"
    $BIN/gatehouse audit verify      # (same environment) recomputes the hash chain

TXT
if [[ "${VAULT:-0}" == 1 ]]; then
  cat <<TXT
  Just-in-time secrets (Vault dev server at $VAULT_ADDR, log in $DATA/vault.log):
    the demo agent's token lives at secret/agents/demo-agent/github; binding demo-github-token
    injects it into the demo upstream's requests. Call tool whoami: "authorization header
    present: yes". Call echo_header with {"name": "Authorization"}: the upstream echoes the
    token and the agent sees [REDACTED:secret demo-github-token].

TXT
else
  echo "  make run VAULT=1 also starts a Vault dev server and injects a secret just in time (see README)."
  echo
fi
echo "  Ctrl-C stops everything."
echo
if [[ "${VAULT:-0}" == 1 && -s "$DATA/gatehouse.db" ]]; then
  # The store exists already (an earlier run): add the binding to it once
  # the gateway is up (apply without --prune only adds and updates).
  ( for _ in $(seq 100); do curl -fsS "http://$LISTEN/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
    GATEHOUSE_ADMIN_TOKEN="$ADMIN_TOKEN" "$BIN/gatehouse" apply -f "$CONFIG" --server "http://$LISTEN" >/dev/null ) &
fi
"$BIN/gatehouse" serve --config "$CONFIG" --admin-token-file "$ADMIN_TOKEN_FILE" "${VAULT_ARGS[@]}"
