"""PostgreSQL: a psycopg 3 async pool; `:name` placeholders rewritten (and cached) to
`%(name)s`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from buildsd.db.base import BeforeCommit, Connection, IntegrityError, Params, Probed, Row
from buildsd.errors import StorageFull

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pyformat(sql: str, _cache: dict[str, str] = {}) -> str:  # noqa: B006 - deliberate memo
    """`:name` placeholders → psycopg's `%(name)s` (literal % doubled); memoised per statement."""
    converted = _cache.get(sql)
    if converted is None:
        converted = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        _cache[sql] = converted
    return converted


class _PostgresConnection:
    __slots__ = ("_after", "_raw")
    dialect = "postgresql"

    def __init__(self, raw: Any, after: list[Callable[[], None]] | None = None) -> None:
        self._raw = raw
        # In a transaction, what to call once it commits (base.Connection.after_commit).
        self._after = after

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._after is None:
            callback()
        else:
            self._after.append(callback)

    async def one(self, sql: str, params: Params = None) -> Row | None:
        from psycopg import errors

        try:
            cursor = await self._raw.execute(to_pyformat(sql), params or {})
        except errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        row: Row | None = await cursor.fetchone()
        return row

    async def all(self, sql: str, params: Params = None) -> list[Row]:
        cursor = await self._raw.execute(to_pyformat(sql), params or {})
        rows: list[Row] = await cursor.fetchall()
        return rows

    async def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        from psycopg import errors

        try:
            async with self._raw.cursor() as cursor:
                await cursor.executemany(to_pyformat(sql), rows)
        except errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def run(self, sql: str, params: Params = None) -> int:
        from psycopg import errors

        try:
            cursor = await self._raw.execute(to_pyformat(sql), params or {})
        except errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        count: int = cursor.rowcount
        return count


PG_DISK_FULL = "53100"  # SQLSTATE disk_full: "could not extend file …: No space left on device"


class PostgresDatabase:
    """A psycopg 3 async pool; statements are prepared by psycopg after a few uses."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self._url = "postgresql://" + url.split("://", 1)[1]
        self._pool_size = pool_size
        self.before_commit: BeforeCommit | None = None
        self._pool: Any = None

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
        )
        await self._pool.open(wait=True, timeout=10)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def transaction(self, exclusive: bool = False) -> AsyncIterator[Connection]:
        committed = None
        after: list[Callable[[], None]] = []
        try:
            async with self._pool.connection() as raw, raw.transaction():
                conn = _PostgresConnection(raw, after)
                if exclusive:
                    await conn.run("SELECT pg_advisory_xact_lock(8700)")
                yield conn
                if self.before_commit is not None:
                    committed = await self.before_commit(conn)
        except Exception as exc:  # a statement's or the COMMIT's
            if getattr(exc, "sqlstate", None) == PG_DISK_FULL:
                raise StorageFull() from exc
            raise
        if committed is not None:
            committed()
        for callback in after:
            callback()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        try:
            async with self._pool.connection() as raw:
                yield _PostgresConnection(raw)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == PG_DISK_FULL:
                raise StorageFull() from exc
            raise

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.one("SELECT 1")

    async def probe_write(self) -> None:
        """A temporary table's first page written to disk (PostgreSQL extends the file at the
        INSERT), rolled back: fails on a full disk, a read-only server or a lost connection."""
        with contextlib.suppress(Probed):
            async with self.transaction() as conn:
                await conn.run(
                    "CREATE TEMPORARY TABLE buildsd_write_probe (x INTEGER) ON COMMIT DROP"
                )
                await conn.run("INSERT INTO buildsd_write_probe VALUES (1)")
                raise Probed
