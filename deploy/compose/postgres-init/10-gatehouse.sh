#!/bin/bash
# Creates the roles and database of Gatehouse and the role of Temporal, with
# passwords from compose secrets. Runs once, when the data volume is empty
# (the postgres image's docker-entrypoint-initdb.d). Temporal's auto-setup
# creates its own databases (temporal, temporal_visibility), hence CREATEDB.
set -euo pipefail
gatehouse_pw=$(cat /run/secrets/gatehouse_db_password)
temporal_pw=$(cat /run/secrets/temporal_db_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v gatehouse_pw="$gatehouse_pw" -v temporal_pw="$temporal_pw" <<'SQL'
CREATE ROLE gatehouse LOGIN PASSWORD :'gatehouse_pw';
CREATE DATABASE gatehouse OWNER gatehouse;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_pw';
SQL
