#!/usr/bin/env bash
# secrets.sh creates the compose deployment's secret files in ./secrets
# (git-ignored): random passwords for PostgreSQL's superuser, Gatehouse's
# and Temporal's database roles and ClickHouse, the passfile Gatehouse's
# PostgreSQL driver reads, and the bootstrap admin token. Existing files are
# kept, so it is safe to run again. vault_token starts empty: after Vault is
# initialised and unsealed, write a token for Gatehouse into it (README.md).
#
# The directory is 0700 and the files 0444: compose bind-mounts each file
# as it is, and the containers' users (Gatehouse runs as uid 65532) must be
# able to read them, while other users of this host cannot reach them.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets

rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

put() { # put NAME VALUE: write secrets/NAME unless it exists
	local f="secrets/$1"
	if [[ ! -e $f ]]; then
		printf '%s\n' "$2" >"$f"
		echo "secrets.sh: created $f" >&2
	fi
	chmod 444 "$f"
}

put postgres_password "$(rand)"
put gatehouse_db_password "$(rand)"
put temporal_db_password "$(rand)"
put clickhouse_password "$(rand)"
# host:port:database:user:password, as libpq and pgx read it.
put gatehouse.pgpass "postgres:5432:gatehouse:gatehouse:$(cat secrets/gatehouse_db_password)"
# The format of `gatehouse keygen --admin`: gha_ and 32 random bytes, base64url.
put admin_token "gha_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
if [[ ! -e secrets/vault_token ]]; then
	: >secrets/vault_token
	echo "secrets.sh: created an empty secrets/vault_token: fill it once Vault is unsealed" >&2
fi
chmod 444 secrets/vault_token
