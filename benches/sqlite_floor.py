"""The floor of SQLite's storage layout for HL7 v2 messages.

Replays the rows a run of benches/mllp.sh wrote (resources, versions, index
rows, message rows, the audit chain) into a new database with the same
schema and settings, a group of messages per transaction, with nothing else
running: no parsing, mapping, planning, sealing or network. What it reaches
is the most any code writing these rows could reach on this machine.

    python3 benches/sqlite_floor.py SOURCE.db DEST.db MESSAGES_PER_COMMIT [FULL|NORMAL]

NO_VALUE_INDEXES=1 leaves out the search parameters' value indexes (the
rows are still written in rid order): what deferring them would leave.
Prints messages/s and write-ahead-log frames (4 KiB pages) per message.
"""

import os
import sqlite3
import sys
import time

src, dst, per = sys.argv[1], sys.argv[2], int(sys.argv[3])
sync = sys.argv[4] if len(sys.argv) > 4 else "FULL"
no_value = bool(os.environ.get("NO_VALUE_INDEXES"))
for f in (dst, dst + "-wal", dst + "-shm"):
    if os.path.exists(f):
        os.remove(f)

s = sqlite3.connect(src)
schema = s.execute(
    "SELECT type, name, tbl_name, sql FROM sqlite_master "
    "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
).fetchall()
s.close()

d = sqlite3.connect(dst, isolation_level=None)
d.execute("PRAGMA page_size = 4096")
d.execute("PRAGMA journal_mode = WAL")
d.execute(f"PRAGMA synchronous = {sync}")
d.execute("PRAGMA cache_size = -65536")
d.execute("PRAGMA wal_autocheckpoint = 0")  # as the server: checkpoints are not the writer's
for kind, name, table, sql in schema:
    if kind == "index" and no_value and table.startswith("sp_"):
        continue
    if kind in ("table", "index"):
        d.execute(sql)
d.execute("ATTACH ? AS src", (src,))
d.execute("INSERT INTO main.tenants SELECT * FROM src.tenants WHERE id NOT IN (SELECT id FROM main.tenants)")

index_tables = [n for k, n, _, _ in schema if k == "table" and n.startswith("sp_")]
rids = [r[0] for r in d.execute("SELECT rid FROM src.resources ORDER BY rid")]
message_ids = [r[0] for r in d.execute("SELECT id FROM src.hl7v2_messages ORDER BY id")]
seqs = [r[0] for r in d.execute("SELECT seq FROM src.audit_chain ORDER BY seq")]
n = len(message_ids)
rids_per_message, seqs_per_message = len(rids) / n, len(seqs) / n

start = time.time()
for g in range(0, n, per):
    end = min(n, g + per)
    ra, rb = rids[int(g * rids_per_message)], rids[min(int(end * rids_per_message), len(rids)) - 1]
    sa, sb = seqs[int(g * seqs_per_message)], seqs[min(int(end * seqs_per_message), len(seqs)) - 1]
    ma, mb = message_ids[g], message_ids[end - 1]
    d.execute("BEGIN IMMEDIATE")
    d.execute("INSERT INTO main.hl7v2_messages SELECT * FROM src.hl7v2_messages WHERE id BETWEEN ? AND ?", (ma, mb))
    d.execute("INSERT INTO main.resources SELECT * FROM src.resources WHERE rid BETWEEN ? AND ?", (ra, rb))
    d.execute("INSERT INTO main.resource_versions SELECT * FROM src.resource_versions WHERE rid BETWEEN ? AND ?", (ra, rb))
    for t in index_tables:
        d.execute(f"INSERT INTO main.{t} SELECT * FROM src.{t} WHERE rid BETWEEN ? AND ?", (ra, rb))
    d.execute("INSERT OR IGNORE INTO main.audit_chain SELECT * FROM src.audit_chain WHERE seq BETWEEN ? AND ?", (sa, sb))
    # the message's outcome is recorded once its transaction has run
    d.execute("UPDATE main.hl7v2_messages SET status = status WHERE id BETWEEN ? AND ?", (ma, mb))
    d.execute("COMMIT")
secs = time.time() - start
wal = os.path.getsize(dst + "-wal")
print(
    f"messages_per_commit={per} synchronous={sync} value_indexes={'off' if no_value else 'on'} "
    f"messages={n} msg_per_s={n / secs:.0f} wal_frames_per_msg={(wal - 32) / 4120 / n:.1f}"
)
d.close()
