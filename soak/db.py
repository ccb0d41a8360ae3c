"""Read-only SQL against a soak cluster's database (PostgreSQL or the SQLite file)."""

from __future__ import annotations

import sqlite3
from typing import Any

from soak.cluster import Cluster


def query(cluster: Cluster, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one fixed statement (no parameters: nothing here comes from outside)."""
    if cluster.backend == "postgresql":
        import psycopg

        options = "-c default_transaction_read_only=on"
        with psycopg.connect(cluster.database_url, options=options, connect_timeout=5) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]  # type: ignore[arg-type]
    path = cluster.database_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
    finally:
        conn.close()
