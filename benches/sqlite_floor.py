"""The floor of SQLite's storage layout for HL7 v2 messages.

Replays the rows a run of benches/mllp.sh wrote (resources, versions, index
rows, message rows, the audit chain) into a new database with the same
schema and settings, a group of messages per transaction, with nothing else
running: no parsing, mapping, planning, sealing or network. What it reaches
is the most any code writing these rows could reach on this machine.

    python3 benches/sqlite_floor.py SOURCE.db DEST.db MESSAGES_PER_COMMIT [FULL|NORMAL]

NO_VALUE_INDEXES=1 leaves out the search parameters' value indexes (the
rows are still written in rid order). MERGE_EVERY=N moves the value indexes
to copies of the index tables instead, filled from the rows written since
the last merge every N messages in a transaction of its own: a layout whose
commits write index rows in rid order and merge them into the value indexes
later (the merge's cost included, overstated: the copies keep their rid
order too). Prints messages/s and write-ahead-log frames (4 KiB pages) per
message.
"""

import os
import re
import sqlite3
import sys
import time

src, dst, per = sys.argv[1], sys.argv[2], int(sys.argv[3])
sync = sys.argv[4] if len(sys.argv) > 4 else "FULL"
no_value = bool(os.environ.get("NO_VALUE_INDEXES"))
merge_every = int(os.environ.get("MERGE_EVERY", "0"))
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
    if kind == "index" and (no_value or merge_every) and table.startswith("sp_"):
        if merge_every and not no_value:  # the value index, on the merged copy
            d.execute(re.sub(r"ON (sp_\w+)", r"ON merged_\1", sql.replace("INDEX ", "INDEX merged_", 1)))
        continue
    if kind in ("table", "index"):
        d.execute(sql)
        if merge_every and kind == "table" and name.startswith("sp_"):
            d.execute(sql.replace(f"TABLE {name}", f"TABLE merged_{name}", 1))
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
    if merge_every and (end // merge_every != g // merge_every or end == n):
        d.execute("BEGIN IMMEDIATE")
        for t in index_tables:
            d.execute(
                f"INSERT INTO main.merged_{t} SELECT * FROM main.{t} "
                f"WHERE rid > coalesce((SELECT max(rid) FROM main.merged_{t}), 0)"
            )
        d.execute("COMMIT")
secs = time.time() - start
wal = os.path.getsize(dst + "-wal")
print(
    f"messages_per_commit={per} synchronous={sync} "
    f"value_indexes={'off' if no_value else f'merged every {merge_every}' if merge_every else 'on'} "
    f"messages={n} msg_per_s={n / secs:.0f} wal_frames_per_msg={(wal - 32) / 4120 / n:.1f}"
)
d.close()
