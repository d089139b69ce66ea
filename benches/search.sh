#!/usr/bin/env bash
# Search latency and throughput over generated data: `charaka generate`
# patients loaded with `charaka import`, then each query of the search issue
# run with wrk, then Patient creates at that size.
#
#   benches/search.sh [sqlite|postgres|both]    (default: sqlite)
#
# Environment: PATIENTS (default 500, about 95,000 resources; 5,300 gives
# about 1,000,000), DURATION per query (5s), CLIENTS (4).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-sqlite}
PATIENTS=${PATIENTS:-500}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-4}
PORT=${PORT:-18082}
source benches/lib.sh

"$BIN" generate --patients "$PATIENTS" --out "$work/data" 2>"$work/generate.log"
resources=$(grep -Eo '[0-9,]+ resources' "$work/generate.log" | head -1 | tr -d ', resources' || true)

B="http://127.0.0.1:$PORT/fhir"
get() { curl -sf "${AUTHZ[@]}" "$B/$1"; }
jq_py() { python3 -c "import json,sys; b=json.load(sys.stdin); print($1)"; }

run() {
  local db=$1 url=$2
  local t0 t1
  t0=$(date +%s.%N)
  RUST_LOG=warn /usr/bin/time -o "$work/import.rss" -f "%M" "$BIN" import --database-url "$url" "$work/data" >"$work/import.log" 2>&1
  t1=$(date +%s.%N)
  echo "$db import resources=$resources seconds=$(python3 -c "print(round($t1-$t0,1))") peak_rss_mib=$(( $(tail -1 "$work/import.rss") / 1024 ))"
  start_server "$url"
  local p fam obs_code
  p=$(get "Patient?_count=1&_sort=_id" | jq_py "b['entry'][0]['resource']['id']")
  fam=$(get "Patient/$p" | jq_py "__import__('urllib.parse').parse.quote(b['name'][0]['family'][:3])")
  famfull=$(get "Patient/$p" | jq_py "__import__('urllib.parse').parse.quote(b['name'][0]['family'])")
  local page="Observation?code=8867-4&_count=50"
  for _ in $(seq 49); do
    page=$(curl -sf "${AUTHZ[@]}" "$B/${page#"$B/"}" | jq_py "[l['url'] for l in b['link'] if l['relation']=='next'][0]")
  done
  page=${page#"http://127.0.0.1:$PORT"}
  local queries=(
    "selective-code /fhir/Observation?code=http://loinc.org|4548-4&patient=Patient/$p"
    "broad-code /fhir/Observation?code=8867-4&_count=50"
    "patient-date-sort /fhir/Observation?patient=$p&date=ge2015-01-01&_sort=-date"
    "name-prefix /fhir/Patient?name=$fam"
    "birthdate /fhir/Patient?birthdate=1970"
    "chain-2 /fhir/Observation?patient.general-practitioner.name=a&_count=50"
    "has /fhir/Patient?_has:Observation:patient:code=4548-4&_count=50"
    "revinclude /fhir/Patient?_id=$p&_revinclude=Observation:patient&_count=50"
    "total-accurate /fhir/Observation?code=8867-4&_total=accurate&_count=50"
    "page-50 $page"
    "chain-narrow /fhir/Observation?patient.name=$famfull&_count=50"
    "has-broad /fhir/Patient?_has:Observation:patient:code=8867-4&_count=50"
  )
  for q in "${queries[@]}"; do
    local name=${q%% *} path=${q#* }
    line=$(QUERY="$path" wrk -t2 -c"$CLIENTS" -d"$DURATION" -s benches/wrk/get.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
    echo "$db $name ${line#RESULT }"
  done
  # Writes at this size: Patient creates (indexed as any write), as in
  # benches/http.sh, for the search issue's "at least 60% of the create
  # figure".
  line=$(wrk -t2 -c32 -d"$DURATION" -s benches/wrk/create.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
  echo "$db create ${line#RESULT }"
  if [ "$db" = sqlite ]; then
    local size
    size=$(python3 - "$work/charaka.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = dict(c.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()) if c.execute("SELECT 1 FROM pragma_compile_options WHERE compile_options='ENABLE_DBSTAT_VTAB'").fetchone() else {}
n = c.execute("SELECT COUNT(*) FROM resources").fetchone()[0]
idx = sum(v for k, v in rows.items() if k.startswith('sp_'))
print(f"index_bytes_per_resource={idx // max(n,1)}" if rows else "index size: dbstat not available")
PY
)
    echo "$db $size"
  fi
  stop_server
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $PATIENTS patients, wrk -t2 -c$CLIENTS -d$DURATION"
case $which in
  sqlite|both) run sqlite "sqlite://$work/charaka.db" ;;
esac
case $which in
  postgres|both) start_postgres 55434; run postgres "postgres://postgres@127.0.0.1:55434/charaka" ;;
esac
