"""What keeps a simulated build fast (issue 14): the runner woken once the build is visible to
other connections, an immediate build written in one transaction after its claim, and the
database's after-commit callbacks that make both possible. On SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from buildsd.db import sqlite_path
from tests.api import flows
from tests.conftest import World
from tests.emulator.conftest import log_lines, wait_stopped


def _committed_builds(database_url: str) -> int:
    """What another connection (another process's runner) sees: committed rows only."""
    if database_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM builds").fetchone()[0])
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM builds").fetchone()
        return int(row[0]) if row else 0


def test_after_commit_runs_once_committed_never_after_a_rollback(world: World) -> None:
    db = world.services.db
    calls: list[str] = []

    async def scenario() -> None:
        async with db.transaction() as conn:
            conn.after_commit(lambda: calls.append("committed"))
            await conn.one("SELECT 1 AS one")
            assert calls == []  # not before the COMMIT
        with pytest.raises(ValueError):
            async with db.transaction() as conn:
                conn.after_commit(lambda: calls.append("rolled back"))
                raise ValueError("refused")
        async with db.connection() as conn:  # autocommit: nothing to wait for
            conn.after_commit(lambda: calls.append("at once"))
            assert calls == ["committed", "at once"]

    world.run(scenario())
    assert calls == ["committed", "at once"]


def test_the_runner_is_woken_once_the_build_is_committed(
    make_world: Any, database_url: str
) -> None:
    """Woken before, a runner's claim on another connection misses the build and it waits for
    the next poll (PostgreSQL's 177 ms median before this was fixed)."""
    world = make_world(runner_slots=0)  # no runner: the wake-up is the test's
    seen: list[int] = []
    world.services.builds._on_queued = lambda: seen.append(_committed_builds(database_url))
    trigger = flows.trigger(world)
    flows.build(world, trigger["trigger_uuid"])
    assert seen == [1]


def test_an_immediate_build_commits_once_after_its_claim(emu: World) -> None:
    """POST, claim, the whole run: three transactions; a runner that finds the queue empty
    (after its claim, after the build ends) writes nothing."""
    trigger = flows.trigger(emu)
    db = emu.services.db
    opened = db.transaction
    count = [0]

    @contextlib.asynccontextmanager
    async def counted(exclusive: bool = False) -> AsyncIterator[Any]:
        count[0] += 1
        async with opened(exclusive) as conn:
            yield conn

    db.transaction = counted  # type: ignore[method-assign]
    try:
        build = wait_stopped(emu, flows.build(emu, trigger["trigger_uuid"])["build_uuid"])
        emu.run(emu.services.runs.claim("idle"))  # the queue is empty: no transaction
    finally:
        db.transaction = opened  # type: ignore[method-assign]
    assert build["build_outcome"] == "success"
    assert count[0] == 3
    lines = log_lines(emu, build["build_uuid"])
    assert lines[0] == "Initializing build environment..." and len(lines) == 9
    assert [seq for seq, *_ in _log_rows(emu, build["build_uuid"])] == list(range(1, 10))


def _log_rows(world: World, build_uuid: str) -> list[tuple[int, int, str]]:
    async def rows() -> list[tuple[int, int, str]]:
        async with world.services.db.connection() as conn:
            found = await conn.all(
                "SELECT seq, ts, line FROM build_log_lines WHERE build_uuid = :b ORDER BY seq",
                {"b": build_uuid},
            )
        return [(row["seq"], row["ts"], row["line"]) for row in found]

    result: list[tuple[int, int, str]] = world.run(rows())
    return result
