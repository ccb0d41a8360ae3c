"""SQLite: one connection per process, run inline on the event loop, with group commit; a
lock another process holds is waited out without blocking the loop (_SQLiteConnection.failed)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildsd.db.base import BeforeCommit, Connection, IntegrityError, Params, Probed, Row
from buildsd.db.sqlite_statements import positional, row_maker, to_positional
from buildsd.errors import DatabaseBusy, StorageFull

CHECKPOINT_SECONDS = 1.0
# SQLite waits this long inline (the event loop stalls) for a lock another connection holds;
# past it the wait goes on asynchronously (failed), so the loop never stalls for longer.
INLINE_BUSY_MS = 1
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_PROBE = "CREATE TABLE buildsd_write_probe (x INTEGER)"


def _primary(exc: sqlite3.Error) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def translated(exc: sqlite3.Error, lock_seconds: float) -> Exception:
    """The error to raise for a driver error: full and busy are the machine's, not a bug."""
    code = _primary(exc)
    if code == sqlite3.SQLITE_FULL:
        return StorageFull()
    if code in _BUSY:
        return DatabaseBusy(lock_seconds)
    return exc


class _SQLiteConnection:
    # Rows are plain dicts, as psycopg's dict_row gives: sqlite3.Row finds a column by name with
    # a case-insensitive scan of every column, which made a 50-build page cost 600 µs more.
    __slots__ = ("_after", "_cursor", "_lock_seconds", "_raw")
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection, lock_seconds: float) -> None:
        self._raw = raw
        # One cursor for every statement: Connection.execute makes (and registers) a cursor
        # each time. Safe because every caller reads its rows before the next statement runs.
        self._cursor = raw.cursor()
        self._lock_seconds = lock_seconds
        # While a transaction is open (one at a time: SQLiteDatabase._lock), what to call once
        # it has committed; None outside one (base.Connection.after_commit).
        self._after: list[Callable[[], None]] | None = None

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._after is None:
            callback()
        else:
            self._after.append(callback)

    # Each statement runs once inline; only when SQLite refuses it does `failed` take over
    # (a try costs nothing in Python 3.11 until it catches). The first try is spelled out
    # rather than calling _one/_all/_run: a call per statement was 2 % of a POST build's
    # instructions (make bench-instructions). (_execute's own call, spelled out too, made no
    # difference that could be measured.)
    async def one(self, sql: str, params: Params = None) -> Row | None:
        try:
            cursor = self._execute(sql, params)
            row = cursor.fetchone()
        except sqlite3.Error as exc:
            found: Row | None = await self.failed(exc, self._one, sql, params)
            return found
        return None if row is None else row_maker(sql, cursor)(row)

    async def all(self, sql: str, params: Params = None) -> list[Row]:
        try:
            cursor = self._execute(sql, params)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            found: list[Row] = await self.failed(exc, self._all, sql, params)
            return found
        if not rows:
            return []
        make = row_maker(sql, cursor)
        return [make(row) for row in rows]

    async def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        try:
            self._cursor.executemany(sql, rows)
        except sqlite3.Error as exc:
            # Never tried again: outside a transaction the rows before the refused one are
            # stored already (every caller runs it inside one, where a refusal ends it).
            await self.failed(exc, None)

    async def run(self, sql: str, params: Params = None) -> int:
        try:
            return self._execute(sql, params).rowcount
        except sqlite3.Error as exc:
            count: int = await self.failed(exc, self._run, sql, params)
            return count

    def _execute(self, sql: str, params: Params) -> sqlite3.Cursor:
        if not params:
            return self._cursor.execute(sql)
        found = positional.get(sql)
        if found is None:
            found = to_positional(sql)
        return self._cursor.execute(found[0], found[1](params))

    def _one(self, sql: str, params: Params) -> Row | None:
        cursor = self._execute(sql, params)
        row = cursor.fetchone()
        return None if row is None else row_maker(sql, cursor)(row)

    def _all(self, sql: str, params: Params) -> list[Row]:
        cursor = self._execute(sql, params)
        rows = cursor.fetchall()
        if not rows:
            return []
        make = row_maker(sql, cursor)
        return [make(row) for row in rows]

    def _run(self, sql: str, params: Params) -> int:
        return self._execute(sql, params).rowcount

    async def failed(self, exc: sqlite3.Error, again: Callable[..., Any] | None, *args: Any) -> Any:
        """What a refused statement becomes: `again(*args)` once a lock held elsewhere is gone.

        SQLite waited only INLINE_BUSY_MS; here the wait goes on between tries without blocking
        the event loop (every other request, /healthz included, is served meanwhile), up to
        BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS, then DatabaseBusy (503). Only outside a
        transaction: a refused statement had no effect, so trying it again is safe. Inside one
        the group already holds the write lock, and any refusal ends the transaction at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_seconds
        delay = 0.001
        while True:
            if isinstance(exc, sqlite3.IntegrityError):
                raise IntegrityError(str(exc)) from exc
            if _primary(exc) not in _BUSY or self._raw.in_transaction or again is None:
                failure = translated(exc, self._lock_seconds)
                if failure is exc:
                    raise exc
                raise failure from exc
            if loop.time() + delay > deadline:
                raise DatabaseBusy(self._lock_seconds) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)  # 1 ms, 2, 4 … then every 50 ms
            try:
                return again(*args)
            except sqlite3.Error as refused:
                exc = refused


class SQLiteDatabase:
    """One connection per process, WAL, statements inline on the event loop (~15 µs each)."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        synchronous: str = "normal",
        lock_seconds: float = 5.0,
        group_commit: bool = True,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._lock_seconds = lock_seconds
        # False: a transaction commits as its body ends, not at the loop's next step, for a
        # process whose few writes must hold SQLite's one write lock briefly (the sender's
        # child, forges/sender_process.py: its loop's next step may be a forge's answer).
        self._group_commit = group_commit
        self.before_commit: BeforeCommit | None = None
        self._raw: sqlite3.Connection | None = None
        self._conn: _SQLiteConnection | None = None
        self._busy = False  # a transaction body runs (the lock: _acquire, _release)
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        # The open group commit (transaction): a future per transaction waiting for its COMMIT.
        self._group: list[asyncio.Future[None]] | None = None
        self._commit_due = False  # its COMMIT waits for the open transaction to end
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        # Why the last checkpoint failed (it writes the WAL back into the database file, so it
        # is the first to find the disk full), or None; set by the checkpoint thread.
        self._checkpoint_failure: str | None = None

    async def open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (pysqlite's implicit
        # transactions on 3.11 let SAVEPOINTs escape); check_same_thread=False because the
        # test client runs the app's loop in another thread than the one that built it.
        raw = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        raw.execute(f"PRAGMA busy_timeout={INLINE_BUSY_MS}")
        raw.execute("PRAGMA foreign_keys=ON")
        # A checkpoint writes the WAL back into the database and fsyncs: tens of milliseconds
        # that would stall every request if the event loop's connection did it. A thread with
        # its own connection does it instead, once a second (readers and writers go on).
        raw.execute("PRAGMA wal_autocheckpoint=0")
        self._raw = raw
        self._conn = _SQLiteConnection(raw, self._lock_seconds)
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
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    # Busy is someone else's checkpoint; a full disk or an I/O error is ours.
                    if _primary(exc) not in _BUSY:
                        self._checkpoint_failure = str(exc)
                else:
                    self._checkpoint_failure = None
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

    def transaction(self, exclusive: bool = False) -> _Transaction:
        """A SAVEPOINT inside the group's transaction; returns once the group has committed.

        Group commit: a COMMIT costs more than the statements of most transactions (it writes
        every page they touched to the WAL), so the transactions that run in one step of the
        event loop share one. The first opens the group (BEGIN IMMEDIATE, SQLite's single write
        lock: every write transaction is exclusive) and schedules its COMMIT for the loop's next
        step; each is a SAVEPOINT that rolls back alone on error. Nobody is answered before the
        COMMIT, so nothing is acknowledged that is not stored. Until then, a read on this
        connection already sees the group's writes.

        A class rather than an @asynccontextmanager, with a lock and a future per waiter of its
        own rather than asyncio.Lock and asyncio.shield: the generator, the lock's checks and the
        shield's extra future and callbacks were a fifth of a repository-connection upsert's
        instructions (docs/benchmarks-instructions.md).
        """
        return _Transaction(self)

    async def _acquire(self) -> None:
        """The transaction lock (what asyncio.Lock does, for the one connection's bodies)."""
        if not self._busy:
            self._busy = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed the lock, then cancelled
                self._release()
            else:
                self._waiting.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the lock passes to that waiter, still held
                return
        self._busy = False

    def _undo(self, raw: sqlite3.Connection, exc: BaseException) -> None:
        """A transaction body failed: roll back its savepoint alone, or, when SQLite rolled
        the whole group back (a full disk can), fail all of it: none of it was stored."""
        if raw.in_transaction:
            raw.execute("ROLLBACK TO tx")
            raw.execute("RELEASE tx")
        else:
            self._fail_group(exc)

    def _end_body(self) -> None:
        if self._commit_due:  # the COMMIT came while this one was open: after it
            self._commit_due = False
            asyncio.get_running_loop().call_soon(self._commit_group)
        self._release()

    def _commit_group(self) -> None:
        if self._busy:  # a transaction is open (it awaited something): when it ends
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
            failure = translated(exc, self._lock_seconds)
            failure.__cause__ = None if failure is exc else exc
            _settle_all(group, failure)
        else:
            for waiter in group:
                if not waiter.done():  # else its caller was cancelled (the others commit)
                    waiter.set_result(None)

    def _fail_group(self, exc: BaseException) -> None:
        """The group's transaction is gone: every transaction in it fails, none was stored."""
        group, self._group = self._group, None
        if group is not None:
            failure = exc if isinstance(exc, Exception) else StorageFull("the transaction ended")
            _settle_all(group, failure)

    def connection(self) -> _Autocommit:
        return _Autocommit(self._connection())

    async def ping(self) -> None:
        await self._connection().one("SELECT 1")

    async def probe_write(self) -> None:
        """The write lock, and a page allocated and rolled back; a failing checkpoint too.

        SQLite writes a transaction to the WAL at its COMMIT and grows the database file at
        the checkpoint, so on a full disk small commits may still fit the WAL while the
        checkpoints fail: those failures count (they come first), and so does a page that
        cannot be allocated (a size limit: PRAGMA max_page_count).
        """
        if self._checkpoint_failure is not None:
            raise StorageFull(f"the database file cannot grow ({self._checkpoint_failure})")
        with contextlib.suppress(Probed):
            async with self.transaction() as conn:
                await conn.run(_PROBE)  # a new table's root page
                raise Probed


class _Transaction:
    """SQLiteDatabase.transaction's context manager (see there)."""

    __slots__ = ("_db",)

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def __aenter__(self) -> Connection:
        db = self._db
        conn = db._connection()
        await db._acquire()
        try:
            cursor = conn._cursor
            if db._group is None:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:  # another process writes: wait it out
                    await conn.failed(exc, cursor.execute, "BEGIN IMMEDIATE")
                db._group = []
                asyncio.get_running_loop().call_soon(db._commit_group)
            cursor.execute("SAVEPOINT tx")
        except BaseException:
            db._end_body()
            raise
        conn._after = []
        return conn

    async def __aexit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        db = self._db
        conn = db._connection()
        raw = conn._raw
        committed = None
        after, conn._after = conn._after, None
        try:
            if exc is None:
                try:
                    if db.before_commit is not None:
                        committed = await db.before_commit(conn)
                except BaseException as failure:
                    db._undo(raw, failure)
                    raise
                conn._cursor.execute("RELEASE tx")
            else:
                db._undo(raw, exc)
                return  # the body's exception goes on
            group = db._group
        finally:
            db._end_body()
        assert group is not None  # the group commits only once no body runs
        waiter = asyncio.get_running_loop().create_future()
        group.append(waiter)
        if not db._group_commit:
            db._commit_group()  # now, unless another body took the lock: then as it ends
        await waiter  # a cancelled caller cancels its own waiter only: the others commit
        if committed is not None:
            committed()
        for callback in after or ():
            callback()


class _Autocommit:
    """SQLiteDatabase.connection's context manager: the one connection, each statement on its
    own (a class: an @asynccontextmanager's generator cost more than a read's statement)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _SQLiteConnection) -> None:
        self._conn = conn

    async def __aenter__(self) -> Connection:
        return self._conn

    async def __aexit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        return None


def _settle_all(group: list[asyncio.Future[None]], failure: Exception) -> None:
    for waiter in group:
        if not waiter.done():
            waiter.set_exception(failure)


def sqlite_path(url: str) -> str:
    """sqlite:///relative.db, sqlite:////abs/path.db or sqlite:///:memory: → a file path."""
    return url.split(":///", 1)[1] if ":///" in url else ":memory:"


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
