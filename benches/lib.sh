# Shared by the benchmark scripts (sourced): build, a scratch directory,
# a throwaway PostgreSQL cluster, starting and stopping the server.
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/charaka
work=$(mktemp -d /tmp/charaka-bench-XXXX)
chmod 755 "$work"
# Encryption at rest: ENCRYPTION=on (default) seals bodies with a key file
# made here; off stores them plain. Every charaka call below sees both.
export CHARAKA_ENCRYPTION=${ENCRYPTION:-on}
if [ "$CHARAKA_ENCRYPTION" = on ]; then
  "$BIN" keys generate --out "$work/bench.keys" >/dev/null
  export CHARAKA_DATA_KEYS_FILE="$work/bench.keys"
fi
server_pid=""; pg_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null || true
  sleep 1; rm -rf "$work"
}
trap cleanup EXIT

# start_postgres PORT: initdb and start a cluster with durable settings
# (fsync and synchronous_commit on), sized for a 2-core machine; creates
# database `charaka`.
start_postgres() {
  local port=$1 bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  local as=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bindir/initdb" -A trust -U postgres -E UTF8 --locale=C -D "$work/pg" >/dev/null
  "${as[@]}" "$bindir/postgres" -D "$work/pg" -p "$port" -k "$work" -c listen_addresses=127.0.0.1 \
    -c shared_buffers=512MB -c max_connections=100 >"$work/pg.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 100); do "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
  "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE charaka" >/dev/null
}

# start_server DATABASE_URL: the release server on $PORT, per-request logs
# off, authorization on (AUTH=off turns it off), audit trail on (AUDIT=off
# turns it off), encryption at rest per ENCRYPTION. Rate limits: RATE_LIMITS=
# lifted (default: the limiters run on every request but allow 10^9/s, so
# the load generator is never refused and their cost is included), off, or
# default (the shipped limits, which refuse most of a wrk run). With auth on, a backend
# client is registered and its token is in $TOKEN; curl calls pass
# "${AUTHZ[@]}" and the wrk scripts send it (benches/wrk/common.lua).
AUTHZ=()
start_server() {
  case "${RATE_LIMITS:-lifted}" in
    lifted) printf 'rate_limit_ip_per_second = 1000000000\nrate_limit_ip_burst = 1000000000\nrate_limit_client_per_second = 1000000000\nrate_limit_client_burst = 1000000000\n' >"$work/limits.toml" ;;
    off) printf 'rate_limit_ip_per_second = 0\nrate_limit_client_per_second = 0\nrate_limit_auth_failures = 0\n' >"$work/limits.toml" ;;
    default) : >"$work/limits.toml" ;;
    *) echo "RATE_LIMITS must be lifted, off or default"; exit 1 ;;
  esac
  RUST_LOG=${SERVER_LOG:-warn} "$BIN" serve --config "$work/limits.toml" --listen 127.0.0.1:$PORT --database-url "$1" --auth "${AUTH:-on}" \
    --audit "${AUDIT:-on}" \
    --sqlite-synchronous "${SQLITE_SYNCHRONOUS:-full}" ${SERVER_ARGS:-} >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null; then
      if [ "${AUTH:-on}" = on ]; then bench_token "$1"; fi
      return
    fi
    sleep 0.1
  done
  echo "server did not start"; cat "$work/server.log"; exit 1
}

# bench_token DATABASE_URL: registers a system/*.cruds client and gets its
# token through the token endpoint (client_credentials).
bench_token() {
  local out id secret
  out=$("$BIN" client add --database-url "$1" --name "bench $RANDOM" --kind symmetric --scope 'system/*.cruds')
  id=$(echo "$out" | sed -n 's/^client_id: //p')
  secret=$(echo "$out" | sed -n 's/^client_secret: \([^ ]*\).*/\1/p')
  TOKEN=$(curl -sf -u "$id:$secret" -d grant_type=client_credentials -d 'scope=system/*.cruds' \
    "http://127.0.0.1:$PORT/auth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  export TOKEN
  AUTHZ=(-H "Authorization: Bearer $TOKEN")
}

stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
