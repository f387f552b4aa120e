#!/usr/bin/env bash
# postgres.sh — a throwaway PostgreSQL cluster for the config store's tests.
#
#   test/scripts/postgres.sh         install (Debian's postgresql, if missing),
#                                    initdb and start a cluster under
#                                    .cache/postgres on a free loopback port,
#                                    and print its URL
#   test/scripts/postgres.sh stop    stop it
#
# Idempotent: a second run finds the running cluster and prints the same URL.
# Use it as
#   export GATEHOUSE_TEST_POSTGRES_URL=$(test/scripts/postgres.sh)
#   go test ./internal/store/... ./graph/...
# The cluster trusts local connections (loopback only, no password): it is
# for tests, never for data. Needs root for apt-get; the server itself runs
# as the postgres user, because PostgreSQL refuses to run as root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$ROOT/.cache/postgres
DATA=$DIR/data
USER_NAME=gatehouse

log() { echo "postgres.sh: $*" >&2; }

bindir() {
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

BIN=$(bindir)
if [[ -z $BIN || ! -x $BIN/pg_ctl ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		log "PostgreSQL is not installed and installing it needs root: apt-get install -y postgresql"
		exit 1
	fi
	log "installing PostgreSQL from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
	BIN=$(bindir)
fi

# as_pg runs a server command as the owner of the data directory.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The server runs as postgres, which must reach the data directory: a
# checkout under a private home (/root is 0700) is out of its reach, so the
# cluster then lives in a per-checkout directory under /tmp.
mkdir -p "$DIR"
if [[ $(id -u) -eq 0 ]]; then
	chown postgres: "$DIR"
	if ! runuser -u postgres -- test -w "$DIR"; then
		DIR=/tmp/gatehouse-postgres-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
		DATA=$DIR/data
		mkdir -p "$DIR"
		chown postgres: "$DIR"
		chmod 700 "$DIR"
	fi
fi

running() { [[ -f $DATA/postmaster.pid ]] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

if [[ ${1:-} == stop ]]; then
	if running; then
		as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
		log "stopped"
	fi
	exit 0
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }


if [[ ! -f $DATA/PG_VERSION ]]; then
	log "initdb in $DATA"
	as_pg "$BIN/initdb" -D "$DATA" -U "$USER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
		{ cat "$DIR/initdb.log" >&2; exit 1; }
fi

if ! running; then
	port=""
	if [[ -f $DIR/port ]] && port_free "$(cat "$DIR/port")"; then
		port=$(cat "$DIR/port")
	else
		for p in $(seq 15432 15532); do
			if port_free "$p"; then port=$p; break; fi
		done
	fi
	[[ -n $port ]] || { log "no free port in 15432-15532"; exit 1; }
	echo "$port" >"$DIR/port"
	log "starting on 127.0.0.1:$port"
	as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 30 \
		-o "-p $port -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
fi

echo "postgres://$USER_NAME@127.0.0.1:$(cat "$DIR/port")/postgres?sslmode=disable"
