"""SQLite when another process holds its write lock, and when its disk is full: the event loop
never waits on the lock, a write waits it out up to BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS and then
fails with DatabaseBusy (503, Retry-After); a full database fails with StorageFull (503)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from buildsd.db import SQLiteDatabase
from buildsd.errors import DatabaseBusy, StorageFull


async def _open(path: Path, lock_seconds: float = 5.0) -> SQLiteDatabase:
    db = SQLiteDatabase(str(path), lock_seconds=lock_seconds)
    await db.open()
    async with db.connection() as conn:
        await conn.run("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, pad TEXT)")
    return db


def _stored(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as other:
        return [n for (n,) in other.execute("SELECT n FROM t ORDER BY n")]


@contextlib.contextmanager
def _held(path: Path) -> Any:
    """Another connection (as another process would) holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


@contextlib.asynccontextmanager
async def _stalls() -> AsyncIterator[list[float]]:
    """The longest the event loop went without running a 5 ms ticker, meanwhile."""
    longest = [0.0]
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            longest[0] = max(longest[0], now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        yield longest
    finally:
        stop.set()
        await ticker


async def _insert(db: SQLiteDatabase, n: int) -> None:
    async with db.transaction() as conn:
        await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})


async def _insert_alone(db: SQLiteDatabase, n: int) -> None:
    """A single statement outside any transaction (autocommit), as upserts are."""
    async with db.connection() as conn:
        await conn.run("INSERT INTO t (n) VALUES (:n)", {"n": n})


async def _insert_returning(db: SQLiteDatabase, n: int) -> None:
    """The same with a row back: Connection.one and .all wait and try again alike."""
    async with db.connection() as conn:
        assert await conn.one("INSERT INTO t (n) VALUES (:n) RETURNING n", {"n": n}) == {"n": n}


async def _insert_returning_all(db: SQLiteDatabase, n: int) -> None:
    async with db.connection() as conn:
        assert await conn.all("INSERT INTO t (n) VALUES (:n) RETURNING n", {"n": n}) == [{"n": n}]


WRITES: list[Callable[[SQLiteDatabase, int], Awaitable[None]]] = [
    _insert,
    _insert_alone,
    _insert_returning,
    _insert_returning_all,
]
IDS = ["transaction", "statement", "statement-one", "statement-all"]


@pytest.mark.parametrize("write", WRITES, ids=IDS)
def test_a_write_waits_out_a_lock_without_blocking_the_loop(tmp_path: Path, write: Any) -> None:
    path = tmp_path / "db.sqlite3"

    async def main() -> tuple[float, float]:
        db = await _open(path)
        with _held(path) as other:
            asyncio.get_running_loop().call_later(0.5, other.execute, "COMMIT")
            async with _stalls() as longest:
                started = time.monotonic()
                await write(db, 1)
                waited = time.monotonic() - started
        await db.close()
        return waited, longest[0]

    waited, stall = asyncio.run(main())
    assert waited >= 0.45, waited  # it did wait for the other connection
    assert stall < 0.1, f"the event loop stalled {stall:.3f} s"  # SQLite alone stalled 5 s
    assert _stored(path) == [1]


@pytest.mark.parametrize("write", WRITES, ids=IDS)
def test_past_the_deadline_a_write_is_503_database_busy(tmp_path: Path, write: Any) -> None:
    path = tmp_path / "db.sqlite3"

    async def main() -> tuple[BaseException | None, float, float]:
        db = await _open(path, lock_seconds=0.4)
        with _held(path):
            async with _stalls() as longest:
                started = time.monotonic()
                try:
                    await write(db, 1)
                    error = None
                except Exception as exc:
                    error = exc
                waited = time.monotonic() - started
        await write(db, 2)  # the lock is gone: writes go through again
        await db.close()
        return error, waited, longest[0]

    error, waited, stall = asyncio.run(main())
    assert isinstance(error, DatabaseBusy), error
    assert (error.status, error.headers) == (503, {"Retry-After": "1"})
    assert "locked by another process" in error.message
    assert 0.35 <= waited < 2, waited
    assert stall < 0.1, stall
    assert _stored(path) == [2]


def test_a_batch_outside_a_transaction_is_refused_at_once_never_tried_twice(
    tmp_path: Path,
) -> None:
    """Outside a transaction executemany stores each row as it goes, so a batch refused halfway
    cannot be tried again (its first rows would be stored twice): it fails at once, busy.
    Every caller batches inside a transaction, where a refusal ends the transaction anyway."""
    path = tmp_path / "db.sqlite3"

    async def main() -> tuple[BaseException | None, float]:
        db = await _open(path, lock_seconds=5)
        with _held(path):
            started = time.monotonic()
            try:
                async with db.connection() as conn:
                    await conn.many("INSERT INTO t (n) VALUES (:n)", [{"n": 1}, {"n": 2}])
                error = None
            except Exception as exc:
                error = exc
            waited = time.monotonic() - started
        await db.close()
        return error, waited

    error, waited = asyncio.run(main())
    assert isinstance(error, DatabaseBusy), error
    assert waited < 1, waited  # not the 5 s a single statement would wait
    assert _stored(path) == []


def test_a_read_is_served_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"

    async def main() -> list[int]:
        db = await _open(path, lock_seconds=0.2)
        await _insert(db, 1)
        with _held(path) as other:
            other.execute("INSERT INTO t (n) VALUES (7)")  # not committed: not seen
            async with db.connection() as conn:
                rows = await conn.all("SELECT n FROM t")
        await db.close()
        return [row["n"] for row in rows]

    assert asyncio.run(main()) == [1]


def test_a_full_database_is_503_storage_full_and_nothing_half_written(tmp_path: Path) -> None:
    """PRAGMA max_page_count: SQLite's own "database or disk is full", for real."""
    path = tmp_path / "db.sqlite3"

    async def main() -> tuple[list[BaseException | None], BaseException | None]:
        db = await _open(path)
        async with db.connection() as conn:
            pages = (await conn.one("PRAGMA page_count"))["page_count"]  # type: ignore[index]
            await conn.run(f"PRAGMA max_page_count = {pages + 2}")

        async def insert(n: int) -> None:
            async with db.transaction() as conn:
                await conn.run(
                    "INSERT INTO t (n, pad) VALUES (:n, :pad)", {"n": n, "pad": "x" * 3000}
                )

        results: list[BaseException | None] = []
        for n in range(1, 20):
            try:
                await insert(n)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        try:
            await db.probe_write()
            probe = None
        except Exception as exc:
            probe = exc
        async with db.connection() as conn:
            await conn.run("PRAGMA max_page_count = 1073741823")
        await insert(100)  # room again: writes go through
        await db.probe_write()
        await db.close()
        return results, probe

    results, probe = asyncio.run(main())
    assert results[0] is None
    refused = [error for error in results if error is not None]
    assert refused and all(isinstance(error, StorageFull) for error in refused), results
    assert refused[0].status == 503 and "database or disk is full" in refused[0].message
    assert isinstance(probe, StorageFull)
    stored = _stored(path)
    assert stored == [n for n, error in enumerate(results, 1) if error is None] + [100]


def test_a_group_sqlite_rolled_back_fails_as_one_with_its_cause(tmp_path: Path) -> None:
    """SQLite may roll back the whole transaction on a full disk or an I/O error (not just the
    statement): then every transaction of the group fails with that cause, none reports a
    write that is not stored, and the next one starts afresh. Simulated by a ROLLBACK."""
    path = tmp_path / "db.sqlite3"

    async def main() -> list[BaseException | None]:
        db = await _open(path)

        async def rolled_back() -> None:
            async with db.transaction() as conn:
                await conn.run("INSERT INTO t (n) VALUES (2)")
                await conn.run("ROLLBACK")  # what SQLite itself does in those cases
                raise StorageFull()

        results = await asyncio.gather(
            _insert(db, 1), rolled_back(), _insert(db, 3), return_exceptions=True
        )
        await _insert(db, 4)
        await db.close()
        return list(results)

    first, failed, after = asyncio.run(main())
    assert isinstance(first, StorageFull) and isinstance(failed, StorageFull)  # 1 was lost
    assert after is None  # a new group
    assert _stored(path) == [3, 4]
