#!/usr/bin/env bash
# client_credentials token issuance (`benches/token.sh [sqlite|postgres|both]`):
# a symmetric backend client asks for a token again and again
# (client_secret_basic, scope system/Patient.rs) over CONNECTIONS
# connections for DURATION. Each token request checks the secret, signs an
# ES256 access token and records an AuditEvent (AUDIT=off to leave it out).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-sqlite}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}

source benches/lib.sh

run() {
  local db=$1 url=$2 out id secret line
  start_server "$url"
  out=$("$BIN" client add --database-url "$url" --name "token bench" --kind symmetric --scope 'system/Patient.rs')
  id=$(echo "$out" | sed -n 's/^client_id: //p')
  secret=$(echo "$out" | sed -n 's/^client_secret: \([^ ]*\).*/\1/p')
  CLIENT_BASIC=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
  export CLIENT_BASIC
  # One request by hand: the script fails here rather than measuring errors.
  curl -sf -H "Authorization: Basic $CLIENT_BASIC" -d grant_type=client_credentials \
    -d 'scope=system/Patient.rs' "http://127.0.0.1:$PORT/auth/token" >/dev/null
  line=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s benches/wrk/token.lua \
    "http://127.0.0.1:$PORT" | grep '^RESULT')
  echo "$db client_credentials ${line#RESULT }"
  stop_server
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, audit ${AUDIT:-on}"
if [ "$which" = sqlite ] || [ "$which" = both ]; then
  run sqlite "sqlite://$work/bench.db"
fi
if [ "$which" = postgres ] || [ "$which" = both ]; then
  start_postgres "${PG_PORT:-15432}"
  run postgres "postgres://postgres@127.0.0.1:${PG_PORT:-15432}/charaka"
fi
