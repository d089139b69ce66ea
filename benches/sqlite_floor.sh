#!/usr/bin/env bash
# The floor of SQLite's storage layout for HL7 v2 messages: a run of KIND
# (adt or oru) over 4 MLLP connections fills a database, then
# benches/sqlite_floor.py replays the rows it wrote, 1, 4 and 16 messages
# per commit: as stored, with the value indexes merged every 500 messages,
# and without them.
#
#   benches/sqlite_floor.sh [adt|oru]        (default: adt)
#
# Environment: SECONDS_EACH (default 8), MLLP_PORT (12575), PORT (18080),
# AUDIT and ENCRYPTION as for benches/mllp.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-adt}
PORT=${PORT:-18080}
MLLP_PORT=${MLLP_PORT:-12575}
export SERVER_ARGS="--mllp-listen 127.0.0.1:$MLLP_PORT"
AUTH=off
source benches/lib.sh
cargo build --release --quiet --bench mllp
SENDER=$(ls -t ${CARGO_TARGET_DIR:-target}/release/deps/mllp-* | grep -v '\.d$' | head -1)

start_server "sqlite://$work/run.db"
MLLP_ADDR=127.0.0.1:$MLLP_PORT KIND=$kind CONNECTIONS=4 SECONDS=${SECONDS_EACH:-8} "$SENDER" | grep '^RESULT'
stop_server
for per in 1 4 16; do
  python3 benches/sqlite_floor.py "$work/run.db" "$work/floor.db" "$per" FULL
  MERGE_EVERY=500 python3 benches/sqlite_floor.py "$work/run.db" "$work/floor.db" "$per" FULL
  NO_VALUE_INDEXES=1 python3 benches/sqlite_floor.py "$work/run.db" "$work/floor.db" "$per" FULL
done
