"""Database access without an ORM: one SQLite connection run inline, or a psycopg 3 async pool.

SQL is written once with `:name` parameters and runs unchanged on both; for psycopg the
placeholders are rewritten (and cached) to `%(name)s`. Rows are read by column name.

Rule for callers (the services): a transaction never awaits anything but its own statements.
On SQLite a statement inside a transaction never suspends, so a transaction's body runs within
one step of the event loop and no other transaction interleaves with it; the transactions of
one step then share one COMMIT (group commit, SQLiteDatabase.transaction), and each caller
resumes after it. Outside a transaction a statement suspends only to wait out a lock another
process holds (sqlite.py: _SQLiteConnection.failed).

Failures that are the machine's, not the request's, become errors the API answers with 503:
a lock held elsewhere too long (DatabaseBusy, with Retry-After) and a full disk (StorageFull).
"""

from __future__ import annotations

from buildsd.config import Settings
from buildsd.db.base import BeforeCommit, Connection, Database, IntegrityError, Params, Row
from buildsd.db.postgres import PostgresDatabase, to_pyformat
from buildsd.db.sqlite import SQLiteDatabase, sqlite_backup, sqlite_path, sqlite_restore

__all__ = [
    "BeforeCommit",
    "Connection",
    "Database",
    "IntegrityError",
    "Params",
    "PostgresDatabase",
    "Row",
    "SQLiteDatabase",
    "create_database",
    "sqlite_backup",
    "sqlite_path",
    "sqlite_restore",
    "to_pyformat",
]


def create_database(settings: Settings, group_commit: bool = True) -> Database:
    """`group_commit`: SQLite's (db/sqlite.py); PostgreSQL commits each transaction anyway."""
    url = settings.resolved_database_url
    if url.startswith("sqlite:"):
        return SQLiteDatabase(
            sqlite_path(url),
            settings.sqlite_synchronous,
            settings.sqlite_lock_timeout_seconds,
            group_commit,
        )
    return PostgresDatabase(url, settings.database_pool_size)
