"""The emulator's bulk queries: empty every table, or remove what one account owns (D26)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from buildsd.db import Connection
from buildsd.store.table_order import TABLES

# What an account keeps through its own reset: itself, its members and its credentials, so the
# test that holds them can go on using them.
_KEPT = {"accounts", "account_members", "api_tokens"}
# Rows that name no account but belong to a row that does: (table, column, parent, key).
_CHILDREN = (
    ("build_log_lines", "build_uuid", "builds", "build_uuid"),
    ("build_events", "build_uuid", "builds", "build_uuid"),
    ("pull_request_builds", "build_uuid", "builds", "build_uuid"),
    ("environment_variables", "trigger_uuid", "triggers", "trigger_uuid"),
    ("worker_version_parts", "version_id", "worker_versions", "id"),
)

# Counts the database's own triggers keep (migrations 0010, 0013): emptied last, as deleting
# their rows' sources bumps them, and never loaded, as inserting those sources rebuilds them.
_DERIVED = ("account_connection_counts", "account_worker_counts")


def _children_first() -> list[str]:
    return [name for name in reversed(TABLES) if name not in _DERIVED] + list(_DERIVED)


async def empty_all(conn: Connection) -> None:
    """Every row of every table, children first (the schema stays, and its version)."""
    for name in _children_first():
        await conn.run(f"DELETE FROM {name}")


async def empty_account(conn: Connection, account_id: str) -> None:
    """Every row the account owns, except the account and its credentials."""
    params = {"account_id": account_id}
    for child, column, parent, key in _CHILDREN:
        await conn.run(
            f"DELETE FROM {child} WHERE {column} IN "
            f"(SELECT {key} FROM {parent} WHERE account_id = :account_id)",
            params,
        )
    for name in _children_first():
        if name in _KEPT or "account_id" not in TABLES[name]:
            continue
        await conn.run(f"DELETE FROM {name} WHERE account_id = :account_id", params)


async def dump_all(conn: Connection) -> dict[str, list[dict[str, object]]]:
    """Every row of every table but the trigger-kept counts, parents first (a snapshot)."""
    return {
        name: [dict(row) for row in await conn.all(f"SELECT * FROM {name}")]
        for name in TABLES
        if name not in _DERIVED
    }


def table_names() -> set[str]:
    return set(TABLES) - set(_DERIVED)


async def load_all(conn: Connection, rows: Mapping[str, Sequence[Mapping[str, object]]]) -> None:
    """Insert a snapshot's rows into empty tables, parents first."""
    for table, known in TABLES.items():
        if table in _DERIVED:
            continue
        if batch := rows.get(table):
            names = list(batch[0])
            if not set(names) <= set(known) or any(set(r) != set(names) for r in batch):
                raise ValueError(f"{table}: rows must have the same columns, of the table's")
            columns = ", ".join(f'"{name}"' for name in names)  # a column may be `when`
            await conn.many(
                f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + n for n in names)})",
                [dict(row) for row in batch],
            )
