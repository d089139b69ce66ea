#!/usr/bin/env bash
# HTTP benchmark of the core interactions with wrk (Debian package `wrk`):
# read by id, vread, create, update, on SQLite and/or PostgreSQL.
#
#   benches/http.sh [sqlite|postgres|both]     (default: both)
#
# Environment: DURATION (default 15s), CONNECTIONS (32), THREADS (2),
# SEEDED (patients written before the reads, default 1000),
# PORT (18080), PG_PORT (15432), SQLITE_SYNCHRONOUS (full|normal, default full), SCENARIOS (default
# "read vread create update"), AUTH (on|off, default on), AUDIT (on|off,
# default on), ENCRYPTION (on|off, default on).
# The server runs from target/release with RUST_LOG=warn (no per-request log).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-both}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
export SEEDED=${SEEDED:-1000}
PORT=${PORT:-18080}

source benches/lib.sh

seed() {
  for i in $(seq 0 $((SEEDED - 1))); do
    printf '{"resourceType":"Patient","id":"p%d","name":[{"family":"Seed"}],"gender":"female","birthDate":"1990-01-01"}' "$i" |
      curl -sf "${AUTHZ[@]}" -o /dev/null -X PUT -H 'Content-Type: application/fhir+json' --data-binary @- \
        "http://127.0.0.1:$PORT/fhir/Patient/p$i"
  done
}

run() {
  local db=$1 url=$2
  start_server "$url"
  seed
  for scenario in ${SCENARIOS:-read vread create update}; do
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
  start_postgres "${PG_PORT:-15432}"
  run postgres "postgres://postgres@127.0.0.1:${PG_PORT:-15432}/charaka"
fi
