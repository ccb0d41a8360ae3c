"""Triggers (spec §5, D17) and their build variables (§5.6, D14)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import msgspec

from buildsd import clock
from buildsd.crypto import Cipher
from buildsd.db import Connection, Database
from buildsd.errors import InvalidRequestBody, NotFound
from buildsd.services import audit
from buildsd.services.patterns import some_branch_builds
from buildsd.store import (
    build_tokens,
    builds,
    previews,
    repo_connections,
    triggers,
    variables,
    workers,
)
from buildsd.wire import (
    MAX_VARIABLES,
    CreateTriggerRequest,
    Page,
    Trigger,
    UpdateTriggerRequest,
    Variable,
    VariableInput,
)


def _check_branches(includes: list[str], excludes: list[str]) -> None:
    if not some_branch_builds(includes, excludes):
        raise InvalidRequestBody(
            "no branch can start a build: branch_includes is empty or branch_excludes covers it",
            pointer="/branch_includes",
        )


class Triggers:
    def __init__(self, db: Database, cipher: Cipher, cache_root: Path) -> None:
        self._db = db
        self._cipher = cipher
        self._cache_root = cache_root

    async def create(self, account_id: str, body: CreateTriggerRequest) -> Trigger:
        _check_branches(body.branch_includes, body.branch_excludes)
        trigger_uuid = clock.new_uuid()
        async with self._db.transaction() as conn:
            now = clock.now()
            await repo_connections.get(conn, account_id, body.repo_connection_uuid.lower())
            await build_tokens.get(conn, account_id, body.build_token_uuid.lower())
            tag = body.external_script_id
            if not await workers.claim(conn, account_id=account_id, tag=tag, now=now):
                raise NotFound()  # as Cloudflare answers for a Worker this account cannot see
            values: dict[str, Any] = msgspec.structs.asdict(body)
            values.update(
                trigger_uuid=trigger_uuid,
                account_id=account_id,
                repo_connection_uuid=body.repo_connection_uuid.lower(),
                build_token_uuid=body.build_token_uuid.lower(),
                created_on=now,
                modified_on=now,
                deleted_on=None,
            )
            await triggers.insert(conn, values)
            row = await triggers.get(conn, account_id, trigger_uuid)
            audit.name_resource(trigger_uuid)
        return triggers.to_wire(row)

    async def update(
        self, account_id: str, trigger_uuid: str, body: UpdateTriggerRequest
    ) -> Trigger:
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(body).items()
            if value is not msgspec.UNSET
        }
        async with self._db.transaction() as conn:
            row = await triggers.get(conn, account_id, trigger_uuid)
            for fixed in ("external_script_id", "repo_connection_uuid"):
                value = changes.pop(fixed, None)
                if value is not None and value.lower() != row[fixed]:
                    raise InvalidRequestBody(f"{fixed} cannot be changed", pointer=f"/{fixed}")
            if "build_token_uuid" in changes:
                changes["build_token_uuid"] = changes["build_token_uuid"].lower()
                await build_tokens.get(conn, account_id, changes["build_token_uuid"])
            _check_branches(
                changes.get("branch_includes", msgspec.json.decode(row["branch_includes"])),
                changes.get("branch_excludes", msgspec.json.decode(row["branch_excludes"])),
            )
            if changes:
                await triggers.update(conn, trigger_uuid, changes, clock.now())
            row = await triggers.get(conn, account_id, trigger_uuid)
        return triggers.to_wire(row)

    async def delete(self, account_id: str, trigger_uuid: str) -> None:
        """Soft delete; the trigger's unfinished builds are cancelled (spec §5.3, D6)."""
        async with self._db.transaction() as conn:
            await triggers.get(conn, account_id, trigger_uuid)
            now = clock.now()
            await triggers.soft_delete(conn, trigger_uuid, now)
            for build in await builds.unfinished_of_trigger(conn, trigger_uuid):
                await builds.stop(
                    conn, build["build_uuid"], outcome="cancelled", now=now, duration_ms=None
                )

    async def get(self, account_id: str, trigger_uuid: str) -> Trigger:
        async with self._db.connection() as conn:
            return triggers.to_wire(await triggers.get(conn, account_id, trigger_uuid))

    async def list_by_worker(self, account_id: str, tag: str) -> list[Trigger]:
        async with self._db.connection() as conn:
            # The rows holding Previews settings are no triggers of the Worker's (issue 13).
            hidden = await previews.owned(conn, account_id, tag)
            return [
                triggers.to_wire(row)
                for row in await triggers.list_by_worker(conn, account_id, tag)
                if row["trigger_uuid"] not in hidden
            ]

    async def page(self, account_id: str, page: Page) -> tuple[list[Trigger], int]:
        async with self._db.connection() as conn:
            rows, total = await triggers.page(conn, account_id, page)
        return [triggers.to_wire(row) for row in rows], total

    def cache_dir(self, trigger_uuid: str) -> Path:
        return self._cache_root / trigger_uuid

    async def purge_build_cache(self, account_id: str, trigger_uuid: str) -> None:
        async with self._db.connection() as conn:
            await triggers.get(conn, account_id, trigger_uuid)
        # Off the event loop: a cache of many files takes a while to remove.
        await asyncio.to_thread(shutil.rmtree, self.cache_dir(trigger_uuid), ignore_errors=True)

    # --- build variables ------------------------------------------------------------------

    async def variables(self, account_id: str, trigger_uuid: str) -> dict[str, Variable]:
        async with self._db.connection() as conn:
            await triggers.get(conn, account_id, trigger_uuid)
            return await self.read_variables(conn, trigger_uuid)

    async def read_variables(self, conn: Connection, trigger_uuid: str) -> dict[str, Variable]:
        """Secrets read as null: their values never leave through the API (D14)."""
        return {
            row["key"]: Variable(
                value=None if row["is_secret"] else row["value"],
                is_secret=bool(row["is_secret"]),
                created_on=row["created_on"],
            )
            for row in await variables.list_for(conn, trigger_uuid)
        }

    async def set_variables(
        self, account_id: str, trigger_uuid: str, changes: dict[str, VariableInput | None]
    ) -> dict[str, Variable]:
        """Merge: keys not named are kept, a null entry deletes, a null value keeps the value."""
        async with self._db.transaction() as conn:
            await triggers.get(conn, account_id, trigger_uuid)
            return await self.write_variables(conn, trigger_uuid, changes)

    async def write_variables(
        self, conn: Connection, trigger_uuid: str, changes: dict[str, VariableInput | None]
    ) -> dict[str, Variable]:
        """set_variables inside the caller's transaction (the Worker build configuration's too)."""
        current = {row["key"]: row for row in await variables.list_for(conn, trigger_uuid)}
        now = clock.now()
        for key, entry in changes.items():
            if entry is None:
                await variables.delete(conn, trigger_uuid, key)
                current.pop(key, None)
                continue
            if entry.value is None:
                if key not in current:
                    raise InvalidRequestBody(
                        f"{key}: a new variable needs a value", pointer=f"/{key}/value"
                    )
                stored = current[key]
                plain = (
                    self._cipher.decrypt(stored["value"])
                    if stored["is_secret"]
                    else stored["value"]
                )
            else:
                plain = entry.value
            value = self._cipher.encrypt(plain) if entry.is_secret else plain
            await variables.put(
                conn,
                trigger_uuid=trigger_uuid,
                key=key,
                value=value,
                is_secret=entry.is_secret,
                now=now,
            )
            current[key] = {"key": key}
        if len(current) > MAX_VARIABLES:
            raise InvalidRequestBody(f"a trigger holds at most {MAX_VARIABLES} variables")
        return await self.read_variables(conn, trigger_uuid)

    async def delete_variable(self, account_id: str, trigger_uuid: str, key: str) -> None:
        async with self._db.transaction() as conn:
            await triggers.get(conn, account_id, trigger_uuid)
            if not await variables.delete(conn, trigger_uuid, key):
                raise NotFound()

    async def plain_variables(
        self, conn: Connection, trigger_uuid: str
    ) -> dict[str, tuple[str, bool]]:
        """Every variable decrypted, for the runner: name → (value, is_secret)."""
        return {
            row["key"]: (
                self._cipher.decrypt(row["value"]) if row["is_secret"] else row["value"],
                bool(row["is_secret"]),
            )
            for row in await variables.list_for(conn, trigger_uuid)
        }
