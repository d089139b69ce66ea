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
source benches/lib.sh

post() { curl -sf "${AUTHZ[@]}" -o /dev/null -X POST -H 'Content-Type: application/fhir+json' -H 'Prefer: return=minimal' \
  --data-binary @"$1" "http://127.0.0.1:$PORT/fhir"; }

run() {
  local db=$1 url=$2
  start_server "$url"
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
  stop_server
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, wrk -t2 -c$CLIENTS -d$DURATION"
if [ "$which" = sqlite ] || [ "$which" = both ]; then run sqlite "sqlite://$work/bench.db"; fi
if [ "$which" = postgres ] || [ "$which" = both ]; then start_postgres 15433; run postgres "postgres://postgres@127.0.0.1:15433/charaka"; fi
