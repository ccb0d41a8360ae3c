"""SQLite group commit: transactions of one loop step share a COMMIT yet stay separate."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from buildsd.db import SQLiteDatabase


async def _open(path: Path, group_commit: bool = True) -> SQLiteDatabase:
    db = SQLiteDatabase(str(path), group_commit=group_commit)
    await db.open()
    async with db.connection() as conn:
        await conn.run("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    return db


def _stored(path: Path) -> list[int]:
    """What another connection (another process) sees: only what was committed."""
    with sqlite3.connect(path) as other:
        return [n for (n,) in other.execute("SELECT n FROM t ORDER BY n")]


def test_a_failed_transaction_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def main() -> list[BaseException | None]:
        db = await _open(path)

        async def insert(n: int, fail: bool = False) -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})
                if fail:
                    raise ValueError("refused")

        results = await asyncio.gather(
            insert(1), insert(2, fail=True), insert(3), return_exceptions=True
        )
        await db.close()
        return list(results)

    results = asyncio.run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert _stored(path) == [1, 3]


def test_nobody_returns_before_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def main() -> list[list[int]]:
        db = await _open(path)
        seen: list[list[int]] = []

        async def insert(n: int) -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})
            seen.append(_stored(path))  # returned: committed, visible to other connections

        await asyncio.gather(*(insert(n) for n in range(5)))
        await db.close()
        return seen

    for visible in asyncio.run(main()):
        assert visible == [0, 1, 2, 3, 4]


def test_without_group_commit_each_transaction_commits_as_it_ends(tmp_path: Path) -> None:
    """The sender's child (forges/sender_process.py): its write lock is not held for the loop's
    next step, so each of one step's transactions is visible alone as it returns."""
    path = tmp_path / "db.sqlite3"

    async def main() -> list[list[int]]:
        db = await _open(path, group_commit=False)
        seen: list[list[int]] = []

        async def insert(n: int) -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})
            seen.append(_stored(path))

        await asyncio.gather(*(insert(n) for n in range(3)))
        await db.close()
        return seen

    assert asyncio.run(main()) == [[0], [0, 1], [0, 1, 2]]


@pytest.mark.parametrize("failing", [False, True])
def test_a_transaction_that_awaits_delays_the_commit_not_forever(
    tmp_path: Path, failing: bool
) -> None:
    """A body that suspends (against the rule in db.py) holds the group's COMMIT until it
    ends, whether it ends well or not; the others then commit with it."""
    path = tmp_path / "db.sqlite3"

    async def main() -> None:
        db = await _open(path)

        async def slow() -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (1)")
                await asyncio.sleep(0.05)
                if failing:
                    raise ValueError("refused")

        async def quick() -> None:
            await asyncio.sleep(0.01)
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (2)")

        await asyncio.wait_for(asyncio.gather(slow(), quick(), return_exceptions=True), 5)
        await db.close()

    asyncio.run(main())
    assert _stored(path) == ([2] if failing else [1, 2])


def test_a_failed_commit_fails_every_transaction_of_its_group_and_the_next_one_starts_afresh(
    tmp_path: Path,
) -> None:
    """A COMMIT that fails (here a deferred foreign-key check, the way a full disk or a lost lock
    would fail it) answers every transaction that shared it with the error, stores none of them,
    and leaves the connection ready for the next group."""
    path = tmp_path / "db.sqlite3"

    async def main() -> tuple[list[BaseException | None], BaseException | None]:
        db = await _open(path)
        async with db.connection() as conn:
            await conn.run("CREATE TABLE child (n INTEGER REFERENCES t (n))")

        async def insert(n: int, orphan: bool = False) -> None:
            async with db.transaction() as conn:
                if orphan:  # checked at COMMIT, not here: the statement itself succeeds
                    await conn.run("PRAGMA defer_foreign_keys = ON")
                    await conn.run("INSERT INTO child (n) VALUES (999)")
                else:
                    await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})

        results = await asyncio.gather(
            insert(1), insert(2, orphan=True), insert(3), return_exceptions=True
        )
        after: BaseException | None = None
        try:
            await insert(4)
        except BaseException as exc:  # reported, not raised: the test says which
            after = exc
        await db.close()
        return list(results), after

    results, after = asyncio.run(main())
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert after is None
    assert _stored(path) == [4]


def test_a_caller_cancelled_while_its_group_commits_cancels_only_itself(tmp_path: Path) -> None:
    """Each transaction waits for the COMMIT on a future of its own: cancelling one caller
    leaves the others' commit (and its own write, already in the group) alone."""
    path = tmp_path / "db.sqlite3"

    async def main() -> list[BaseException | None]:
        db = await _open(path)

        async def insert(n: int) -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})

        tasks = [asyncio.create_task(insert(n)) for n in range(3)]
        await asyncio.sleep(0)  # every body has run; each waits for the group's COMMIT
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()
        return list(results)

    results = asyncio.run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert _stored(path) == [0, 1, 2]


def test_a_caller_cancelled_while_waiting_for_the_lock_passes_it_on(tmp_path: Path) -> None:
    """A body that suspends holds the transaction lock; a waiter cancelled meanwhile neither
    writes nor keeps the lock from the next one."""
    path = tmp_path / "db.sqlite3"

    async def main() -> list[BaseException | None]:
        db = await _open(path)
        release = asyncio.Event()

        async def slow() -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (1)")
                await release.wait()  # against the rule in db.py: the lock stays held

        async def insert(n: int) -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})

        first = asyncio.create_task(slow())
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(insert(n)) for n in (2, 3)]
        await asyncio.sleep(0)  # both wait for the lock
        waiting[0].cancel()
        release.set()
        results = await asyncio.gather(first, *waiting, return_exceptions=True)
        await db.close()
        return list(results)

    results = asyncio.run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert _stored(path) == [1, 3]


def test_named_parameters_repeated_single_and_none(tmp_path: Path) -> None:
    """Statements bind `:name` by number (db/sqlite.py): a name used twice, one name, none."""
    path = tmp_path / "db.sqlite3"

    async def main() -> tuple[Any, Any, Any, Any]:
        db = await _open(path)
        async with db.transaction() as conn:
            await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": 7})
            await conn.run("INSERT INTO t (n) VALUES (:n + :n)", {"n": 4, "unused": 1})
        async with db.connection() as conn:
            twice = await conn.one("SELECT :a AS a, :b AS b, :a AS again", {"b": 2, "a": 1})
            single = await conn.all("SELECT n FROM t WHERE n > :least ORDER BY n", {"least": 0})
            none = await conn.one("SELECT COUNT(*) AS c FROM t")
            time_literal = await conn.one("SELECT '10:00:00' AS t, :x AS x", {"x": "y"})
        await db.close()
        return twice, single, none, time_literal

    twice, single, none, time_literal = asyncio.run(main())
    assert twice == {"a": 1, "b": 2, "again": 1}
    assert single == [{"n": 7}, {"n": 8}]
    assert none == {"c": 2}
    assert time_literal == {"t": "10:00:00", "x": "y"}
