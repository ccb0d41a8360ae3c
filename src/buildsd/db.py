"""Database access without an ORM: one SQLite connection run inline, or a psycopg 3 async pool.

SQL is written once with `:name` parameters and runs unchanged on both; for psycopg the
placeholders are rewritten (and cached) to `%(name)s`. Rows are read by column name.

Rule for callers (the services): a transaction never awaits anything but its own statements.
On SQLite a statement never suspends, so a transaction's body runs within one step of the event
loop and no other transaction interleaves with it; the transactions of one step then share one
COMMIT (group commit, SQLiteDatabase.transaction), and each caller resumes after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from buildsd.config import Settings

Row = Mapping[str, Any]
Params = Mapping[str, Any] | None


class Connection(Protocol):
    """What a store module needs: run a statement and read its rows."""

    dialect: str  # "sqlite" or "postgresql", for the rare statement that differs

    async def one(self, sql: str, params: Params = None) -> Row | None: ...
    async def all(self, sql: str, params: Params = None) -> list[Row]: ...
    async def run(self, sql: str, params: Params = None) -> int: ...
    async def many(self, sql: str, rows: list[dict[str, Any]]) -> None: ...


class Database(Protocol):
    dialect: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    # async context manager yielding a Connection; exclusive=True also serialises against
    # every other exclusive transaction on the database (bootstrap, admin changes).
    def transaction(self, exclusive: bool = False) -> Any: ...
    def connection(self) -> Any: ...  # async context manager, autocommit per statement
    async def ping(self) -> None: ...


CHECKPOINT_SECONDS = 1.0


class IntegrityError(Exception):
    """A unique or foreign-key constraint refused a write (both drivers map to this)."""


# --- SQLite -------------------------------------------------------------------------------------


RowMaker = Callable[[tuple[Any, ...]], dict[str, Any]]
_row_makers: dict[str, RowMaker] = {}


def _row_maker(sql: str, cursor: sqlite3.Cursor) -> RowMaker:
    """A function turning one row of `sql` into a dict, made once per statement.

    Why: dict(zip(names, row)) goes through the generic mapping constructor for each row; the
    dict display compiled for the statement's columns took 15 % off a 50-build page's
    instructions (make bench-instructions). Column names are spelled with repr: any is safe.
    """
    maker = _row_makers.get(sql)
    if maker is None:
        names = (column[0] for column in cursor.description)
        pairs = ", ".join(f"{name!r}: row[{i}]" for i, name in enumerate(names))
        maker = eval(f"lambda row: {{{pairs}}}")  # noqa: S307 - built from column names only
        if len(_row_makers) < 10_000:  # statements are a fixed set; bounded all the same
            _row_makers[sql] = maker
    return maker


class _SQLiteConnection:
    # Rows are plain dicts, as psycopg's dict_row gives: sqlite3.Row finds a column by name with
    # a case-insensitive scan of every column, which made a 50-build page cost 600 µs more.
    __slots__ = ("_raw",)
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def one(self, sql: str, params: Params = None) -> Row | None:
        try:
            cursor = self._raw.execute(sql, params or {})
            row = cursor.fetchone()
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return None if row is None else _row_maker(sql, cursor)(row)

    async def all(self, sql: str, params: Params = None) -> list[Row]:
        cursor = self._raw.execute(sql, params or {})
        rows = cursor.fetchall()
        if not rows:
            return []
        make = _row_maker(sql, cursor)
        return [make(row) for row in rows]

    async def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        try:
            self._raw.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def run(self, sql: str, params: Params = None) -> int:
        try:
            return self._raw.execute(sql, params or {}).rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc


class SQLiteDatabase:
    """One connection per process, WAL, statements inline on the event loop (~15 µs each)."""

    dialect = "sqlite"

    def __init__(self, path: str, synchronous: str = "normal") -> None:
        self._path = path
        self._synchronous = synchronous
        self._raw: sqlite3.Connection | None = None
        self._conn: _SQLiteConnection | None = None
        self._lock = asyncio.Lock()
        self._group: asyncio.Future[None] | None = None  # the open group commit (transaction)
        self._commit_due = False  # its COMMIT waits for the open transaction to end
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()

    async def open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (pysqlite's implicit
        # transactions on 3.11 let SAVEPOINTs escape); check_same_thread=False because the
        # test client runs the app's loop in another thread than the one that built it.
        raw = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        raw.execute("PRAGMA busy_timeout=5000")
        raw.execute("PRAGMA foreign_keys=ON")
        # A checkpoint writes the WAL back into the database and fsyncs: tens of milliseconds
        # that would stall every request if the event loop's connection did it. A thread with
        # its own connection does it instead, once a second (readers and writers go on).
        raw.execute("PRAGMA wal_autocheckpoint=0")
        self._raw = raw
        self._conn = _SQLiteConnection(raw)
        if self._path != ":memory:":
            self._stop_checkpoints = threading.Event()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    async def close(self) -> None:
        if self._group is not None:
            self._commit_group()
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join()
            self._checkpointer = None
        if self._raw is not None:
            with contextlib.suppress(sqlite3.Error):
                self._raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._raw.close()
            self._raw = self._conn = None

    def _connection(self) -> _SQLiteConnection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    @asynccontextmanager
    async def transaction(self, exclusive: bool = False) -> AsyncIterator[Connection]:
        """A SAVEPOINT inside the group's transaction; returns once the group has committed.

        Group commit: a COMMIT costs more than the statements of most transactions (it writes
        every page they touched to the WAL), so the transactions that run in one step of the
        event loop share one. The first opens the group (BEGIN IMMEDIATE, SQLite's single write
        lock: every write transaction is exclusive) and schedules its COMMIT for the loop's next
        step; each is a SAVEPOINT that rolls back alone on error. Nobody is answered before the
        COMMIT, so nothing is acknowledged that is not stored. Until then, a read on this
        connection already sees the group's writes.
        """
        conn = self._connection()
        async with self._lock:
            raw = conn._raw
            if self._group is None:
                raw.execute("BEGIN IMMEDIATE")
                self._group = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(self._commit_group)
            group = self._group
            raw.execute("SAVEPOINT tx")
            try:
                yield conn
            except BaseException:
                raw.execute("ROLLBACK TO tx")
                raw.execute("RELEASE tx")
                raise
            else:
                raw.execute("RELEASE tx")
            finally:
                if self._commit_due:  # the COMMIT came while this one was open: after it
                    self._commit_due = False
                    asyncio.get_running_loop().call_soon(self._commit_group)
        await asyncio.shield(group)  # a cancelled caller must not cancel the others' commit

    def _commit_group(self) -> None:
        if self._lock.locked():  # a transaction is open (it awaited something): when it ends
            self._commit_due = True
            return
        group, self._group = self._group, None
        if group is None or self._raw is None:
            return
        try:
            self._raw.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._raw.execute("ROLLBACK")
            group.set_exception(exc)
        else:
            group.set_result(None)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        yield self._connection()

    async def ping(self) -> None:
        await self._connection().one("SELECT 1")


# --- PostgreSQL ---------------------------------------------------------------------------------

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pyformat(sql: str, _cache: dict[str, str] = {}) -> str:  # noqa: B006 - deliberate memo
    """`:name` placeholders → psycopg's `%(name)s` (literal % doubled); memoised per statement."""
    converted = _cache.get(sql)
    if converted is None:
        converted = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        _cache[sql] = converted
    return converted


class _PostgresConnection:
    __slots__ = ("_raw",)
    dialect = "postgresql"

    def __init__(self, raw: Any) -> None:
        self._raw = raw

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


class PostgresDatabase:
    """A psycopg 3 async pool; statements are prepared by psycopg after a few uses."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self._url = "postgresql://" + url.split("://", 1)[1]
        self._pool_size = pool_size
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
        async with self._pool.connection() as raw, raw.transaction():
            conn = _PostgresConnection(raw)
            if exclusive:
                await conn.run("SELECT pg_advisory_xact_lock(8700)")
            yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self._pool.connection() as raw:
            yield _PostgresConnection(raw)

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.one("SELECT 1")


def sqlite_path(url: str) -> str:
    """sqlite:///relative.db, sqlite:////abs/path.db or sqlite:///:memory: → a file path."""
    return url.split(":///", 1)[1] if ":///" in url else ":memory:"


def create_database(settings: Settings) -> Database:
    url = settings.resolved_database_url
    if url.startswith("sqlite:"):
        return SQLiteDatabase(sqlite_path(url), settings.sqlite_synchronous)
    return PostgresDatabase(url, settings.database_pool_size)


def sqlite_backup(source: str, destination: str) -> None:
    """Copy a SQLite database consistently while others read and write it (online backup)."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(destination)) as dst,
    ):
        src.execute("PRAGMA busy_timeout=5000")
        src.backup(dst)


def sqlite_restore(backup: str, destination: str) -> None:
    """Replace the database's content with a backup's, through SQLite (never a file copy)."""
    with contextlib.closing(sqlite3.connect(backup)) as src:
        tables = {row[0] for row in src.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in tables:
            raise ValueError(f"{backup} is not a buildsd database")
        with contextlib.closing(sqlite3.connect(destination)) as dst:
            dst.execute("PRAGMA busy_timeout=5000")
            src.backup(dst)
