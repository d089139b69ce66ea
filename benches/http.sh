#!/usr/bin/env bash
# HTTP benchmark of the core interactions with wrk (Debian package `wrk`):
# read by id, vread, create, update, on SQLite and/or PostgreSQL.
#
#   benches/http.sh [sqlite|postgres|both]     (default: both)
#
# Environment: DURATION (default 15s), CONNECTIONS (32), THREADS (2),
# SEEDED (patients written before the reads, default 1000),
# SQLITE_SYNCHRONOUS (full|normal, default full).
# The server runs from target/release with RUST_LOG=warn (no per-request log).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-both}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
export SEEDED=${SEEDED:-1000}
PORT=${PORT:-18080}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
BIN=target/release/charaka
work=$(mktemp -d /tmp/charaka-bench-XXXX)
chmod 755 "$work"
server_pid=""; pg_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null || true
  sleep 1; rm -rf "$work"
}
trap cleanup EXIT

start_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  local as=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bindir/initdb" -A trust -U postgres -E UTF8 --locale=C -D "$work/pg" >/dev/null
  # Durable settings (fsync and synchronous_commit on), sized for a 2-core machine.
  "${as[@]}" "$bindir/postgres" -D "$work/pg" -p 15432 -k "$work" -c listen_addresses=127.0.0.1 \
    -c shared_buffers=512MB -c max_connections=100 >"$work/pg.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 100); do "$bindir/pg_isready" -q -h 127.0.0.1 -p 15432 && break; sleep 0.1; done
  "$bindir/psql" -q -h 127.0.0.1 -p 15432 -U postgres -c "CREATE DATABASE charaka" >/dev/null
}

start_server() {
  local url=$1
  RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --database-url "$url" \
    --sqlite-synchronous "${SQLITE_SYNCHRONOUS:-full}" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$work/server.log"; exit 1
}

stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

seed() {
  for i in $(seq 0 $((SEEDED - 1))); do
    printf '{"resourceType":"Patient","id":"p%d","name":[{"family":"Seed"}],"gender":"female","birthDate":"1990-01-01"}' "$i" |
      curl -sf -o /dev/null -X PUT -H 'Content-Type: application/fhir+json' --data-binary @- \
        "http://127.0.0.1:$PORT/fhir/Patient/p$i"
  done
}

run() {
  local db=$1 url=$2
  start_server "$url"
  seed
  for scenario in read vread create update; do
    local line
    line=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "benches/wrk/$scenario.lua" \
      "http://127.0.0.1:$PORT" | grep '^RESULT')
    echo "$db $scenario ${line#RESULT }"
  done
  stop_server
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $SEEDED seeded patients"
if [ "$which" = sqlite ] || [ "$which" = both ]; then
  run sqlite "sqlite://$work/bench.db"
fi
if [ "$which" = postgres ] || [ "$which" = both ]; then
  start_postgres
  run postgres "postgres://postgres@127.0.0.1:15432/charaka"
fi
