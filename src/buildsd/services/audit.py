"""The audit log: every write through the API, recorded with it, and read back per account.

What is recorded is decided by the API (which operations, which ids). The entry of a write goes
into the write's own transaction: the API opens a draft (`begin`) before it calls the service,
and the database hands every transaction about to commit to `write_draft` (its before_commit
hook), which adds the entry once the draft names its resource: at once for an operation whose
path names it, or when a create names what it made (`name_resource`, in the transaction that
makes it). So an entry commits exactly when its write does, with no second commit to lose.

What has no write transaction of its own (a refusal, a cancel of a stopped build, an operation
whose create names nothing) is recorded after the answer is known (`record`), in a short
transaction of its own; the entries of concurrent requests share one (group commit), and
`record` returns only once its entry has committed, so a client that reads the log after its
answer finds it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from buildsd import clock
from buildsd.db import Connection, Database
from buildsd.errors import NotFound
from buildsd.services.identity import Caller
from buildsd.store import audit_logs, deploy_hooks, users
from buildsd.store.audit_logs import Filters
from buildsd.wire import AuditLog as AuditLogEntry
from buildsd.wire import Page

__all__ = ["AuditEvent", "AuditLog", "Filters"]

_EMAIL_CACHE_LIMIT = 10_000


@dataclass(slots=True)
class AuditEvent:
    """One write as the API saw it. `details` holds ids and names only, never a value. Made
    per request and changed only by its own request (a create names its resource: a copy
    with dataclasses.replace was 7 % of an upsert's instructions)."""

    account_id: str | None  # None: the account is the deploy hook's (its uuid is in details)
    operation: str
    action_type: str
    resource_type: str
    resource_id: str
    status: int
    caller: Caller | None  # None: no credential (a deploy hook)
    ip: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Draft:
    """The entry of the request being served, until a transaction takes it."""

    event: AuditEvent  # its status: the operation's on success
    named: bool  # the resource id is known (from the path, or named by a create)
    written: bool = False  # committed with the write it records
    # Until the service call returns: a task it started copied the draft with its context, and
    # must not write it later.
    open: bool = True

    def mark_written(self) -> None:
        self.written = True


# The draft of the request this task serves: set by the API around the service call.
_draft: contextvars.ContextVar[Draft | None] = contextvars.ContextVar("audit_draft", default=None)


def name_resource(resource_id: str) -> None:
    """A create names what it made, inside the transaction that makes it: its entry then goes
    into that transaction. Does nothing outside an audited request."""
    draft = _draft.get()
    if draft is not None and not draft.named:
        draft.event.resource_id = resource_id
        draft.named = True


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Users' emails never change (no operation edits them), so one lookup per user will do.
        self._emails: dict[str, str] = {}
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        db.before_commit = self.write_draft

    def begin(self, event: AuditEvent, *, named: bool) -> tuple[Draft, contextvars.Token[Any]]:
        """Open the draft of this request's write, before its service is called."""
        draft = Draft(event, named)
        return draft, _draft.set(draft)

    @staticmethod
    def end(draft: Draft, token: contextvars.Token[Any]) -> None:
        draft.open = False
        _draft.reset(token)

    async def write_draft(self, conn: Connection) -> Callable[[], None] | None:
        """The database's before_commit: add the draft's entry to the transaction about to
        commit, once the draft names its resource; marked written when that commit is done."""
        draft = _draft.get()
        if draft is None or draft.written or not draft.named or not draft.open:
            return None
        event = draft.event
        caller = event.caller
        user_id = caller.user_id if caller is not None else None
        email = self._emails.get(user_id) if user_id else ""
        if event.account_id is not None and email is not None:  # no query: no coroutine
            values = self._row(event, event.account_id, email)
        else:
            found = await self._values(event, conn)
            if found is None:
                return None
            values = found
        await audit_logs.insert_many(conn, [values])
        return draft.mark_written

    async def record(self, event: AuditEvent) -> str | None:
        """Store the event once committed; its id, or None when no account can be attributed
        (a deploy hook that does not exist). Raises what the insert raised."""
        async with self._db.connection() as conn:
            values = await self._values(event, conn)
        if values is None:
            return None
        committed = asyncio.get_running_loop().create_future()
        self._pending.append((values, committed))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await committed
        return str(values["id"])

    async def _values(self, event: AuditEvent, conn: Connection) -> dict[str, Any] | None:
        """The row of an entry; None when no account can be attributed."""
        account_id = event.account_id or await self._account_of_hook(conn, event.details)
        if account_id is None:
            return None
        caller = event.caller
        user_id = caller.user_id if caller is not None else None
        return self._row(event, account_id, await self._email(conn, user_id) if user_id else "")

    @staticmethod
    def _row(event: AuditEvent, account_id: str, email: str) -> dict[str, Any]:
        caller = event.caller
        user_id = caller.user_id if caller is not None else None
        return {
            "id": clock.new_uuid(),
            "account_id": account_id,
            "when": clock.now(),
            "seq": clock.next_seq(),  # the order of entries of one millisecond
            "action_type": event.action_type,
            "action_result": 200 <= event.status < 400,
            "actor_id": user_id or "",
            "actor_email": email,
            "actor_ip": event.ip,
            "actor_type": "user" if caller is not None else "Cloudflare",
            "credential_id": caller.credential_id if caller is not None else None,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "operation": event.operation,
            "status": event.status,
            "metadata": msgspec.json.encode(_metadata(event)).decode(),
        }

    async def _flush(self) -> None:
        """Write every pending entry, a batch per transaction, until none is left. A task of its
        own: a cancelled request does not leave the others' entries unwritten."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._insert([values for values, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                        continue
                    # One entry the database refuses must not cost the others theirs.
                    for values, committed in batch:
                        try:
                            await self._insert([values])
                        except Exception as exc:
                            _settle(committed, exc)
                        else:
                            _settle(committed, None)
                else:
                    for _, committed in batch:
                        _settle(committed, None)
        finally:
            self._flusher = None

    async def _insert(self, entries: list[dict[str, Any]]) -> None:
        async with self._db.transaction() as conn:
            await audit_logs.insert_many(conn, entries)

    async def page(
        self, account_id: str, filters: Filters, page: Page, *, newest_first: bool = True
    ) -> tuple[list[AuditLogEntry], int]:
        async with self._db.connection() as conn:
            rows, total = await audit_logs.page(
                conn, account_id, filters, page, newest_first=newest_first
            )
        return [audit_logs.to_wire(row) for row in rows], total

    async def _email(self, conn: Connection, user_id: str) -> str:
        email = self._emails.get(user_id)
        if email is None:
            row = await users.find(conn, user_id)
            email = str(row["email"]) if row is not None else ""
            if len(self._emails) >= _EMAIL_CACHE_LIMIT:
                self._emails.clear()
            self._emails[user_id] = email
        return email

    async def _account_of_hook(self, conn: Connection, details: dict[str, Any]) -> str | None:
        hook_uuid = details.get("deploy_hook_uuid")
        if not isinstance(hook_uuid, str):
            return None
        try:
            hook = await deploy_hooks.get_any(conn, hook_uuid.lower())
        except NotFound:
            return None
        return str(hook["account_id"])


def _settle(committed: asyncio.Future[None], error: BaseException | None) -> None:
    """Wake the request waiting for its entry (unless it gave up waiting)."""
    if committed.done():
        return
    if error is None:
        committed.set_result(None)
    else:  # the request logs it and answers anyway
        committed.set_exception(error)


def _metadata(event: AuditEvent) -> dict[str, Any]:
    metadata = dict(event.details)
    if event.caller is not None:
        metadata["credential_type"] = "api_key" if event.caller.via_key else "api_token"
    return metadata
