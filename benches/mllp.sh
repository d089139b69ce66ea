#!/usr/bin/env bash
# HL7 v2 over MLLP: ADT^A01 and ORU^R01 (5 OBX) throughput and ACK latency
# with 1, 4 and 16 connections, on SQLite and/or PostgreSQL.
#
#   benches/mllp.sh [sqlite|postgres|both]     (default: both)
#
# Environment: SECONDS_EACH (default 10), MLLP_PORT (12575), PORT (18080),
# PG_PORT (15432), SQLITE_SYNCHRONOUS (full|normal, default full), AUDIT
# (on|off, default on), ENCRYPTION (on|off, default on), KINDS ("adt oru"),
# CONNECTION_COUNTS ("1 4 16"). Each database is warmed up first (and
# analyzed, on PostgreSQL); see run().
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-both}
PORT=${PORT:-18080}
MLLP_PORT=${MLLP_PORT:-12575}
export SERVER_ARGS="--mllp-listen 127.0.0.1:$MLLP_PORT"
AUTH=off  # MLLP has no tokens; the HTTP side is only used for readiness
source benches/lib.sh
cargo build --release --quiet --bench mllp
SENDER=$(ls -t ${CARGO_TARGET_DIR:-target}/release/deps/mllp-* | grep -v '\.d$' | head -1)

run() {
  local db=$1 url=$2
  start_server "$url"
  # Warm-up: 3 s of ADT^A01 over 4 connections. On PostgreSQL, then the
  # ANALYZE that autovacuum runs within its first minute on a new database:
  # until a table has statistics, plans made while it was nearly empty
  # (and kept by each connection's prepared statements) scan it.
  MLLP_ADDR=127.0.0.1:$MLLP_PORT KIND=adt CONNECTIONS=4 SECONDS=3 "$SENDER" >/dev/null
  if [ "$db" = postgres ]; then
    "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/psql" -q -h 127.0.0.1 -p "${PG_PORT:-15432}" -U postgres charaka -c ANALYZE
  fi
  for kind in ${KINDS:-adt oru}; do
    for c in ${CONNECTION_COUNTS:-1 4 16}; do
      local line
      line=$(MLLP_ADDR=127.0.0.1:$MLLP_PORT KIND=$kind CONNECTIONS=$c SECONDS=${SECONDS_EACH:-10} "$SENDER" | grep '^RESULT')
      echo "$db ${line#RESULT }"
    done
  done
  stop_server
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, MLLP, ${SECONDS_EACH:-10} s each"
if [ "$which" = sqlite ] || [ "$which" = both ]; then
  run sqlite "sqlite://$work/bench.db"
fi
if [ "$which" = postgres ] || [ "$which" = both ]; then
  start_postgres "${PG_PORT:-15432}"
  run postgres "postgres://postgres@127.0.0.1:${PG_PORT:-15432}/charaka"
fi
