#!/usr/bin/env bash
# Patient/$everything latency with wrk over Synthea patients: the sample's
# hospital and practitioner Bundles and its five patients loaded as
# transactions, then one patient's record asked for again and again, as the
# default page (50 resources) and whole (_count=1000), after a 3 s warm-up.
#
#   benches/everything.sh [sqlite|postgres|both]    (default: sqlite)
#
# Environment: DURATION per query (default 10s), CLIENTS (4), PATIENT (the
# family name of the patient asked for, default Hyatt: about 500
# resources), SHARED (default $CHARAKA_SHARED or ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-sqlite}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-4}
PATIENT=${PATIENT:-Hyatt}
SHARED=${SHARED:-${CHARAKA_SHARED:-../shared}}
PORT=${PORT:-18083}
THREADS=$(( CLIENTS < 2 ? CLIENTS : 2 ))
data="$SHARED/data/synthea-sample"
[ -d "$data" ] || { echo "no Synthea sample at $data (set CHARAKA_SHARED)"; exit 1; }
source benches/lib.sh

B="http://127.0.0.1:$PORT/fhir"
post() { curl -sf "${AUTHZ[@]}" -o /dev/null -X POST -H 'Content-Type: application/fhir+json' -H 'Prefer: return=minimal' \
  --data-binary @"$1" "$B"; }
jq_py() { python3 -c "import json,sys; b=json.load(sys.stdin); print($1)"; }

run() {
  local db=$1 url=$2
  start_server "$url"
  post "$data"/hospitalInformation*.json
  post "$data"/practitionerInformation*.json
  for f in "$data"/*_*-*.json; do post "$f"; done
  local id size
  id=$(curl -sf "${AUTHZ[@]}" "$B/Patient?family=$PATIENT" | jq_py "b['entry'][0]['resource']['id']")
  size=$(curl -sf "${AUTHZ[@]}" "$B/Patient/$id/\$everything?_count=1000" | jq_py "len(b['entry'])")
  echo "$db patient=$PATIENT resources_in_record=$size"
  # Warm-up, not counted: the first requests after the load pay for its
  # WAL checkpoint (SQLite) and a cold cache.
  QUERY="/fhir/Patient/$id/\$everything" wrk -t"$THREADS" -c"$CLIENTS" -d3s -s benches/wrk/get.lua "http://127.0.0.1:$PORT" >/dev/null
  for q in "default-page /fhir/Patient/$id/\$everything" "whole-record /fhir/Patient/$id/\$everything?_count=1000"; do
    local name=${q%% *} path=${q#* }
    line=$(QUERY="$path" wrk -t"$THREADS" -c"$CLIENTS" -d"$DURATION" -s benches/wrk/get.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
    echo "$db everything-$name ${line#RESULT }"
  done
  stop_server
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, wrk -t$THREADS -c$CLIENTS -d$DURATION, audit ${AUDIT:-on}"
case $which in
  sqlite|both) run sqlite "sqlite://$work/charaka.db" ;;
esac
case $which in
  postgres|both) start_postgres 55435; run postgres "postgres://postgres@127.0.0.1:55435/charaka" ;;
esac
