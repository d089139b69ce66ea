#!/usr/bin/env bash
# Transaction throughput with wrk: Synthea patient Bundles (all entries POST,
# urn:uuid references) posted by CLIENTS concurrent connections.
#
#   benches/transaction.sh [sqlite|postgres|both]    (default: both)
#
# Environment: DURATION (default 20s), CLIENTS (4), SHARED (../shared),
# SQLITE_SYNCHRONOUS (full|normal, default full).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-both}
DURATION=${DURATION:-20s}
CLIENTS=${CLIENTS:-4}
SHARED=${SHARED:-${CHARAKA_SHARED:-../shared}}
PORT=${PORT:-18081}
data="$SHARED/data/synthea-sample"
[ -d "$data" ] || { echo "no Synthea sample at $data (set SHARED)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
BIN=target/release/charaka
work=$(mktemp -d /tmp/charaka-bench-XXXX); chmod 755 "$work"
server_pid=""; pg_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null || true
  sleep 1; rm -rf "$work"
}
trap cleanup EXIT

start_postgres() {
  local bindir; bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  local as=(); if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bindir/initdb" -A trust -U postgres -E UTF8 --locale=C -D "$work/pg" >/dev/null
  "${as[@]}" "$bindir/postgres" -D "$work/pg" -p 15433 -k "$work" -c listen_addresses=127.0.0.1 \
    -c shared_buffers=512MB -c max_connections=100 >"$work/pg.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 100); do "$bindir/pg_isready" -q -h 127.0.0.1 -p 15433 && break; sleep 0.1; done
  "$bindir/psql" -q -h 127.0.0.1 -p 15433 -U postgres -c "CREATE DATABASE charaka" >/dev/null
}

post() { curl -sf -o /dev/null -X POST -H 'Content-Type: application/fhir+json' -H 'Prefer: return=minimal' \
  --data-binary @"$1" "http://127.0.0.1:$PORT/fhir"; }

run() {
  local db=$1 url=$2
  RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:$PORT --database-url "$url" \
    --sqlite-synchronous "${SQLITE_SYNCHRONOUS:-full}" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
  post "$data"/hospitalInformation*.json
  post "$data"/practitionerInformation*.json
  for f in "$data"/Marcos_Delagarza_*.json "$data"/Marcelina_Hyatt_*.json; do
    local entries rps
    entries=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['entry']))" "$f")
    line=$(BUNDLE="$f" wrk -t2 -c"$CLIENTS" -d"$DURATION" -s benches/wrk/transaction.lua \
      "http://127.0.0.1:$PORT/fhir" | grep '^RESULT')
    rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$line")
    echo "$db transaction entries=$entries ${line#RESULT } resources_per_s=$((rps * entries))"
  done
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, wrk -t2 -c$CLIENTS -d$DURATION"
if [ "$which" = sqlite ] || [ "$which" = both ]; then run sqlite "sqlite://$work/bench.db"; fi
if [ "$which" = postgres ] || [ "$which" = both ]; then start_postgres; run postgres "postgres://postgres@127.0.0.1:15433/charaka"; fi
