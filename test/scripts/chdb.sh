#!/usr/bin/env bash
# chdb.sh installs the embedded ClickHouse engine, chDB's libchdb.so
# (ClickHouse 26.7, ~570 MB), from npm into .cache/chdb (git-ignored),
# where internal/audit/chdb finds it (chdb.DevLibPath). Idempotent: a
# stamp file records the installed version, and a second run with it
# present does nothing. The version lives here only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.cache/chdb"
CHDB_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.7.3-stable.1"

lib="$DIR/node_modules/$CHDB_PACKAGE/libchdb.so"
stamp="$DIR/.stamp-$CHDB_VERSION"
if [[ -f "$stamp" && -f "$lib" ]]; then
  exit 0
fi
echo "chdb: installing $CHDB_PACKAGE@$CHDB_VERSION into .cache/chdb (~570 MB)" >&2
mkdir -p "$DIR"
cd "$DIR"
[[ -f package.json ]] || echo '{"name":"gatehouse-chdb","private":true}' >package.json
npm install --no-audit --no-fund --loglevel=error --save-exact "$CHDB_PACKAGE@$CHDB_VERSION"
if [[ ! -f "$lib" ]]; then
  echo "chdb: $lib missing after npm install" >&2
  exit 1
fi
rm -f "$DIR"/.stamp-*
touch "$stamp"
