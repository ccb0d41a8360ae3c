"""What a store module needs of a database, whichever it is: rows, the protocols, and the
errors both drivers map theirs to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

Row = Mapping[str, Any]
Params = Mapping[str, Any] | None


class Connection(Protocol):
    """What a store module needs: run a statement and read its rows."""

    dialect: str  # "sqlite" or "postgresql", for the rare statement that differs

    async def one(self, sql: str, params: Params = None) -> Row | None: ...
    async def all(self, sql: str, params: Params = None) -> list[Row]: ...
    async def run(self, sql: str, params: Params = None) -> int: ...
    async def many(self, sql: str, rows: list[dict[str, Any]]) -> None: ...
    # Call `callback` once the transaction this connection runs has committed (never if it
    # rolls back); outside a transaction, at once. Why: what a commit makes visible to other
    # connections (a queued build, for a runner's claim) must be announced after it, not before.
    def after_commit(self, callback: Callable[[], None]) -> None: ...


# Run at the end of every transaction that is about to commit, with its connection: what it
# writes commits (or rolls back) with the transaction. It may return a callable, called once the
# transaction has committed. (The audit log writes a request's entry this way: services/audit.py.)
BeforeCommit = Callable[[Connection], Awaitable[Callable[[], None] | None]]


class Database(Protocol):
    dialect: str
    before_commit: BeforeCommit | None

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    # async context manager yielding a Connection; exclusive=True also serialises against
    # every other exclusive transaction on the database (bootstrap, admin changes).
    def transaction(self, exclusive: bool = False) -> Any: ...
    def connection(self) -> Any: ...  # async context manager, autocommit per statement
    async def ping(self) -> None: ...
    # A real write, rolled back: raises (StorageFull, DatabaseBusy, a driver error) if the
    # database cannot take one now (/readyz).
    async def probe_write(self) -> None: ...


class Probed(Exception):
    """Rolls a write probe back."""


class IntegrityError(Exception):
    """A unique or foreign-key constraint refused a write (both drivers map to this)."""
