"""Repository connections: upsert by (account, provider_type, repo_id) inside the account's
grants (D5, D21), soft delete (D6)."""

from __future__ import annotations

from typing import Any

import msgspec

from buildsd import clock, git
from buildsd.db import Database
from buildsd.errors import InvalidRequestBody
from buildsd.services import audit
from buildsd.services.grants import Grants
from buildsd.store import repo_connections
from buildsd.wire import Page, RepoConnection, UpsertRepoConnectionRequest


def check_names(body: msgspec.Struct, pointer: str = "") -> dict[str, Any]:
    """The connection as given, as a mapping (what the grant check reads). Refused here, at
    the PUT, rather than at the first build: each name and id fills one path segment of a
    clone URL (D23), so none may hold `/` (but `owner/repo`), `..` or `%`."""
    connection = msgspec.structs.asdict(body)
    try:
        git.check_connection(connection)
    except git.CloneURLError as exc:
        raise InvalidRequestBody(str(exc), pointer=f"{pointer}/{exc.field}") from exc
    return connection


class RepoConnections:
    def __init__(self, db: Database, grants: Grants) -> None:
        self._db = db
        self._grants = grants

    async def upsert(self, account_id: str, body: UpsertRepoConnectionRequest) -> RepoConnection:
        """404 12000 (RepositoryNotGranted) outside the account's grants, storing nothing."""
        connection = check_names(body)
        # A new connection is one INSERT … ON CONFLICT: one row whatever the concurrency (D5);
        # the transaction is the audit entry's too (services/audit.py).
        async with self._db.transaction() as conn:
            await self._grants.check_connection(conn, account_id, connection)
            given = {
                "account_id": account_id,
                "provider_type": body.provider_type,
                "provider_account_id": body.provider_account_id,
                "provider_account_name": body.provider_account_name,
                "repo_id": body.repo_id,
                "repo_name": body.repo_name,
                "now": clock.now(),
            }
            # A live connection's re-PUT first (no new uuid to make); else the upsert itself.
            row = await repo_connections.update_live(conn, **given)
            if row is None:
                row = await repo_connections.upsert(
                    conn, repo_connection_uuid=clock.new_uuid(), **given
                )
            audit.name_resource(row["repo_connection_uuid"])
        return repo_connections.to_wire(row)

    async def delete(self, account_id: str, repo_connection_uuid: str) -> None:
        async with self._db.transaction() as conn:
            await repo_connections.get(conn, account_id, repo_connection_uuid)
            await repo_connections.soft_delete(conn, account_id, repo_connection_uuid, clock.now())

    async def get(self, account_id: str, repo_connection_uuid: str) -> RepoConnection:
        async with self._db.connection() as conn:
            row = await repo_connections.get(conn, account_id, repo_connection_uuid)
        return repo_connections.to_wire(row)

    async def page(
        self,
        account_id: str,
        page: Page,
        *,
        provider_type: str | None = None,
        repo_id: str | None = None,
    ) -> tuple[list[RepoConnection], int]:
        async with self._db.connection() as conn:
            rows, total = await repo_connections.page(
                conn, account_id, page, provider_type=provider_type, repo_id=repo_id
            )
        return [repo_connections.to_wire(row) for row in rows], total
