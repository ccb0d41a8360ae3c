"""Workers by tag and name (D16): the admin CLI makes them; deploy-hook paths find them by name."""

from __future__ import annotations

import re

from buildsd import clock
from buildsd.db import Database, IntegrityError, Row
from buildsd.errors import AlreadyExists, InvalidRequestBody, NotFound
from buildsd.store import accounts, workers
from buildsd.wire_workers import SCRIPT_NAME

_NAME = re.compile(SCRIPT_NAME)  # the Workers platform's rule: one name for one Worker (D24)


class Workers:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, account_id: str, name: str) -> str:
        """A new Worker named `name` in the account; returns its new 32-hex tag."""
        if not _NAME.fullmatch(name):
            raise InvalidRequestBody(
                f"{name!r}: a Worker name is 1-63 lowercase letters, digits, '-' or '_'"
            )
        tag = clock.new_hex32()
        taken = AlreadyExists(f"account {account_id} already has a Worker named {name!r}")
        async with self._db.transaction() as conn:
            if not await accounts.exists(conn, account_id):
                raise NotFound(f"no account {account_id}")
            if await workers.find_by_name(conn, account_id, name) is not None:
                raise taken
            try:
                await workers.insert(
                    conn, account_id=account_id, tag=tag, name=name, now=clock.now()
                )
            except IntegrityError as exc:  # a concurrent create took the name first
                raise taken from exc
        return tag

    async def list_(self, account_id: str) -> list[Row]:
        async with self._db.connection() as conn:
            return await workers.list_for_account(conn, account_id)
