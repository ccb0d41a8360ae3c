"""The audit log: every write through the API, recorded after it, and read back per account.

What is recorded is decided by the API (which operations, which ids); this service stores an
entry in its own short transaction, after the write's own transaction has committed. So a
write is never undone by its audit entry, and an entry is never written for a write that rolled
back — but a process killed between the two commits loses that one entry.

Group commit: a commit is the expensive part of an entry (an fsync on PostgreSQL, a WAL write
on SQLite), so the entries of concurrent requests share one transaction. `record` returns only
once its entry has committed: a client that reads the log after its answer finds its write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec

from buildsd import clock
from buildsd.db import Database
from buildsd.errors import NotFound
from buildsd.services.identity import Caller
from buildsd.store import audit_logs, deploy_hooks, users
from buildsd.store.audit_logs import Filters
from buildsd.wire import AuditLog as AuditLogEntry
from buildsd.wire import Page

__all__ = ["AuditEvent", "AuditLog", "Filters"]

_EMAIL_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One write as the API saw it. `details` holds ids and names only, never a value."""

    account_id: str | None  # None: the account is the deploy hook's (its uuid is in details)
    operation: str
    action_type: str
    resource_type: str
    resource_id: str
    status: int
    caller: Caller | None  # None: no credential (a deploy hook)
    ip: str
    details: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Users' emails never change (no operation edits them), so one lookup per user will do.
        self._emails: dict[str, str] = {}
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, event: AuditEvent) -> str | None:
        """Store the event once committed; its id, or None when no account can be attributed
        (a deploy hook that does not exist). Raises what the insert raised."""
        account_id = event.account_id or await self._account_of_hook(event.details)
        if account_id is None:
            return None
        caller = event.caller
        user_id = caller.user_id if caller is not None else None
        entry_id = clock.new_uuid()
        values = {
            "id": entry_id,
            "account_id": account_id,
            "when": clock.now(),
            "action_type": event.action_type,
            "action_result": 200 <= event.status < 400,
            "actor_id": user_id or "",
            "actor_email": await self._email(user_id) if user_id else "",
            "actor_ip": event.ip,
            "actor_type": "user" if caller is not None else "Cloudflare",
            "credential_id": caller.credential_id if caller is not None else None,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "operation": event.operation,
            "status": event.status,
            "metadata": msgspec.json.encode(_metadata(event)).decode(),
        }
        committed = asyncio.get_running_loop().create_future()
        self._pending.append((values, committed))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await committed
        return entry_id

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

    async def _email(self, user_id: str) -> str:
        email = self._emails.get(user_id)
        if email is None:
            async with self._db.connection() as conn:
                row = await users.find(conn, user_id)
            email = str(row["email"]) if row is not None else ""
            if len(self._emails) >= _EMAIL_CACHE_LIMIT:
                self._emails.clear()
            self._emails[user_id] = email
        return email

    async def _account_of_hook(self, details: dict[str, Any]) -> str | None:
        hook_uuid = details.get("deploy_hook_uuid")
        if not isinstance(hook_uuid, str):
            return None
        try:
            async with self._db.connection() as conn:
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
