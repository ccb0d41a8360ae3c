"""The builds queries read the partial index meant for them, on both databases.

A partial index is used only when the database can tell the query's WHERE implies the index's
(SQLite: the same terms, word for word), and nothing fails when it cannot: the query just scans
the table. Each statement is recorded as the store runs it and then EXPLAINed.
"""

from __future__ import annotations

from typing import Any

import pytest

from buildsd.store import builds, runs
from tests.conftest import World

ACCOUNT = "0123456789abcdef0123456789abcdef"
UUID = "6f1c9e3e-1111-4222-8333-944455556666"
NOW = "2026-01-01T00:00:00.000Z"


class Recording:
    """A Connection that keeps every statement it runs."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.dialect, self.statements = conn, conn.dialect, []

    async def one(self, sql: str, params: Any = None) -> Any:
        self.statements.append((sql, params))
        return await self.conn.one(sql, params)

    async def all(self, sql: str, params: Any = None) -> Any:
        self.statements.append((sql, params))
        return await self.conn.all(sql, params)


# What the store runs → the indexes it may read (either will do where two are named).
CALLS = {
    "claim": (
        lambda c: runs.claim(c, owner="o", now=NOW, lease_until=NOW, limit=6),
        ["ix_builds_queued"],
    ),
    "expired": (lambda c: runs.expired(c, NOW), ["ix_builds_running"]),
    "unfinished_counts": (runs.unfinished_counts, ["ix_builds_unfinished"]),
    "unfinished_of_trigger": (
        lambda c: builds.unfinished_of_trigger(c, UUID),
        ["ix_builds_unfinished"],
    ),
    "queued_for_branch": (
        lambda c: builds.queued_for_branch(c, UUID, "main"),
        ["ix_builds_unfinished", "ix_builds_queued"],
    ),
    "by_version": (lambda c: builds.by_version(c, ACCOUNT, UUID), ["ix_builds_version_id"]),
    "minutes_used_since": (
        lambda c: builds.minutes_used_since(c, ACCOUNT, NOW),
        ["ix_builds_stopped_on"],
    ),
    "hook_builds_since": (
        lambda c: builds.hook_builds_since(c, ACCOUNT, NOW),
        ["ix_builds_deploy_hook"],
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_builds_query_reads_its_partial_index(world: World, name: str) -> None:
    db = world.services.db
    call, indexes = CALLS[name]

    async def plan() -> str:
        async with db.transaction() as conn:
            recording = Recording(conn)
            await call(recording)
            if db.dialect == "postgresql":  # tables this small would be read whole anyway
                await conn.run("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
            lines = []
            for sql, params in recording.statements:
                rows = await conn.all(explain + sql, params)
                lines += [" ".join(str(v) for v in row.values()) for row in rows]
            return "\n".join(lines)

    text = world.run(plan())
    assert any(index in text for index in indexes), text
    if name == "claim":  # the per-account count of running builds inside it, too
        assert "ix_builds_running" in text, text
