"""What one audit entry's INSERT costs on SQLite, by the table's shape: instructions per row
counted by valgrind (issue 17 item 5: the upsert's bar of 380,000 instructions).

    .venv/bin/python -m bench.audit_insert [VARIANT ...]

The sqlite3 module alone, no buildsd: a table of audit_logs' columns with 20,000 rows, then
rows inserted one execute each, 16 to a transaction (as a group commit under load writes
them); each variant runs with 400 and 1,200 rows, and the difference over 800 is one row's
instructions (the same Python builds every row, so the variants differ by SQLite's work).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

from bench.instructions import collected, counted

_TABLE = (
    'CREATE TABLE audit_logs (id VARCHAR(36) NOT NULL, account_id VARCHAR(32) NOT NULL, "when" '
    "VARCHAR(24) NOT NULL, action_type VARCHAR(64) NOT NULL, action_result BOOLEAN NOT NULL, "
    "actor_id VARCHAR(64) NOT NULL, actor_email VARCHAR(320) NOT NULL, actor_ip VARCHAR(64) "
    "NOT NULL, actor_type VARCHAR(16) NOT NULL, credential_id VARCHAR(64), resource_type "
    "VARCHAR(64) NOT NULL, resource_id VARCHAR(256) NOT NULL, operation VARCHAR(64) NOT NULL, "
    "status INTEGER NOT NULL, metadata TEXT NOT NULL, seq BIGINT DEFAULT '0' NOT NULL{key}){how}"
)
_BY_WHEN = 'CREATE INDEX by_when ON audit_logs (account_id, "when", seq, id)'
_BY_ACTION = 'CREATE INDEX by_action ON audit_logs (account_id, action_type, "when", seq, id)'
_KEY = ", PRIMARY KEY (id)"
_ROWID, _NO_ROWID, _NO_KEY = (
    _TABLE.format(key=_KEY, how=""),
    _TABLE.format(key=_KEY, how=" WITHOUT ROWID"),
    _TABLE.format(key="", how=""),
)
_BOTH = [_BY_WHEN, _BY_ACTION]
# name → (what it is, the table, its indexes, time-ordered ids)
VARIANTS = {
    "today": ("the schema (0005 + 0018)", _ROWID, _BOTH, False),
    "no-action-index": ("without the action_type index", _ROWID, [_BY_WHEN], False),
    "time-ordered-ids": ("ids in time order (not uuid4)", _ROWID, _BOTH, True),
    "without-rowid": ("WITHOUT ROWID, keyed by id", _NO_ROWID, _BOTH, False),
    "no-primary-key": ("no index on id", _NO_KEY, _BOTH, False),
    "key-only": ("the id's index alone", _ROWID, [], False),
    "bare": ("a rowid table, no index", _NO_KEY, [], False),
}
PREFILL, FEWER, MORE, GROUP = 20_000, 400, 1_200, 16


def child(variant: str, rows: int) -> None:
    _, table, indexes, time_ordered = VARIANTS[variant]
    conn = sqlite3.connect(Path(tempfile.mkdtemp()) / "audit.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in [table, *indexes]:
        conn.execute(statement)
    made = [0]

    def row() -> tuple[object, ...]:
        made[0] += 1
        n = made[0]
        if time_ordered:
            key = str(uuid.UUID(bytes=(1_700_000_000_000 + n).to_bytes(6, "big") + os.urandom(10)))
        else:
            key = str(uuid.uuid4())
        meta = json.dumps({"repo_connection_uuid": str(uuid.uuid4())})
        when = f"2026-12-04T12:00:{n // 1000 % 60:02d}.{n % 1000:03d}Z"
        return (key, "0" * 32, when, "upsert", 1, "u" * 32, "a@example.com", "127.0.0.1", "user",
                "t" * 32, "repo_connection", str(uuid.uuid4()), "upsert", 200, meta, n)  # fmt: skip

    insert = f"INSERT INTO audit_logs VALUES ({', '.join('?' * 16)})"
    conn.execute("BEGIN")
    for _ in range(PREFILL):
        conn.execute(insert, row())
    conn.execute("COMMIT")
    cursor = conn.cursor()
    for start in range(0, rows, GROUP):
        cursor.execute("BEGIN IMMEDIATE")
        for _ in range(min(GROUP, rows - start)):
            cursor.execute(insert, row())
        cursor.execute("COMMIT")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return
    chosen = sys.argv[1:] or list(VARIANTS)
    print("| variant | instructions per row | vs today |\n|---|---:|---:|")
    today = None
    for name in ["today", *[v for v in chosen if v != "today"]]:
        fewer, more = (
            counted(["bench.audit_insert", "--child", name, str(n)]) for n in (FEWER, MORE)
        )
        per_row = (collected(more) - collected(fewer)) // (MORE - FEWER)
        today = today or per_row
        print(f"| {name}: {VARIANTS[name][0]} | {per_row:,} | {per_row - today:+,} |", flush=True)


if __name__ == "__main__":
    main()
