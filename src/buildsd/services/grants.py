"""Grants (D21): the provider accounts whose repositories an account may connect and build.

A grant is what Cloudflare's Git app installation is behind `grant_id`: a provider account
(owner id and name) and either all of its repositories or a list (id and name). The operator
adds and revokes them (`buildsd grants`); the API only lists them. While the database has one
account, or with BUILDSD_GRANTS=all, everything is granted and no grant is needed.

Three places ask: a connection is made only inside the grants (names too: clone URLs are built
from them); a delivery reaches an account's connection only if a grant covers the repository
the payload names (its owner's id, not the one a connection claims); config autofill answers
for a repository a grant lists before it is connected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Connection, Database, Row
from buildsd.errors import InvalidRequestBody, NotFound, RepositoryNotGranted
from buildsd.store import accounts, grants, repo_connections
from buildsd.wire import Grant, GrantRepository, Name, Page, ProviderType

log = logging.getLogger("buildsd.grants")


class _Repository(Struct):
    repo_id: Name
    repo_name: Name


class _NewGrant(Struct):
    provider_type: ProviderType
    provider_account_id: Name
    provider_account_name: Name
    repositories: Annotated[list[_Repository], Meta(max_length=10_000)] = []


def _same_name(a: str, b: str) -> bool:
    # GitHub logins and GitLab paths are ASCII and case-insensitive: "Octo-Org" is octo-org.
    # Beyond ASCII only the very name: casefold() makes "straße" "strasse", which a clone URL
    # (a file:// template's directory, say) keeps apart.
    return a == b or (a.isascii() and b.isascii() and a.lower() == b.lower())


def allows_connection(grant: Grant, connection: Mapping[str, str]) -> bool:
    """Whether the grant covers a connection as given (PUT body or stored row)."""
    if (
        grant.provider_type != connection["provider_type"]
        or grant.provider_account_id != connection["provider_account_id"]
        or not _same_name(grant.provider_account_name, connection["provider_account_name"])
    ):
        return False
    return grant.repository_selection == "all" or any(
        repo.repo_id == connection["repo_id"]
        # `owner/repo` names repo of that owner (D23; another owner was refused already)
        and _same_name(repo.repo_name, connection["repo_name"].rpartition("/")[2])
        for repo in grant.repositories
    )


def allows_delivery(grant: Grant, provider_type: str, delivery: Mapping[str, str]) -> bool:
    """Whether the grant covers the repository a stored delivery names, for a connection of
    `provider_type`. The owner is its id when the payload gives one (GitHub, Gitea), else the
    path before the repository's name (GitLab sends no namespace id)."""
    if grant.provider_type != provider_type:
        return False
    owner_id = delivery["provider_account_id"]
    owner_name = delivery["repository"].rpartition("/")[0]
    if owner_id:
        if grant.provider_account_id != owner_id:
            return False
    elif not owner_name or not _same_name(grant.provider_account_name, owner_name):
        return False
    return grant.repository_selection == "all" or any(
        repo.repo_id == delivery["repo_id"] for repo in grant.repositories
    )


class Grants:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._several = False  # seen more than one account (deleted only by an emulator reset)

    # --- the operator's (CLI) and the account's (API) views -----------------------------------

    def forget(self) -> None:
        """An emulator's reset deleted every account: count them again."""
        self._several = False

    async def add(
        self,
        account_id: str,
        provider_type: str,
        provider_account_id: str,
        provider_account_name: str,
        repositories: Iterable[tuple[str, str]] = (),
    ) -> Grant:
        """A new grant; with repositories listed, only those (selection "selected")."""
        raw = {
            "provider_type": provider_type,
            "provider_account_id": provider_account_id,
            "provider_account_name": provider_account_name,
            "repositories": [{"repo_id": i, "repo_name": n} for i, n in repositories],
        }
        try:
            given = msgspec.convert(raw, _NewGrant)
        except msgspec.ValidationError as exc:
            raise InvalidRequestBody(str(exc)) from exc
        listed = list(
            {
                r.repo_id: GrantRepository(r.repo_id, r.repo_name) for r in given.repositories
            }.values()
        )
        grant = Grant(
            grant_id=clock.new_uuid(),
            provider_type=given.provider_type,
            provider_account_id=given.provider_account_id,
            provider_account_name=given.provider_account_name,
            repository_selection="selected" if listed else "all",
            repositories=listed,
            created_on=clock.now(),
        )
        async with self._db.transaction() as conn:
            if not await accounts.exists(conn, account_id):
                raise NotFound("no such account")
            await grants.insert(conn, account_id, grant)
        return grant

    async def every(self, account_id: str | None = None) -> list[tuple[str, Grant]]:
        """(account id, grant) of one account or of all, for the operator."""
        async with self._db.connection() as conn:
            rows = await (grants.of_account(conn, account_id) if account_id else grants.every(conn))
        return [(row["account_id"], grants.to_wire(row)) for row in rows]

    async def page(self, account_id: str, page: Page) -> tuple[list[Grant], int]:
        async with self._db.connection() as conn:
            rows, total = await grants.page(conn, account_id, page)
        return [grants.to_wire(row) for row in rows], total

    async def get(self, account_id: str, grant_id: str) -> Grant:
        async with self._db.connection() as conn:
            return grants.to_wire(await grants.get(conn, account_id, grant_id.lower()))

    async def revoke(self, grant_id: str) -> int:
        """Delete a grant, and soft-delete the account's connections no other grant covers (their
        triggers' builds then fail saying so, D6): a revoked grant reaches no repository any
        more, pushes or manual builds. How many connections went."""
        async with self._db.transaction() as conn:
            row = await grants.find_any(conn, grant_id.lower())
            if row is None:
                raise NotFound("no such grant")
            await grants.delete(conn, row["grant_id"])
            if await self.everything_granted(conn):
                return 0
            left = [grants.to_wire(g) for g in await grants.of_account(conn, row["account_id"])]
            owned = await repo_connections.live_of_owner(
                conn, row["account_id"], row["provider_type"], row["provider_account_id"]
            )
            now = clock.now()
            gone = 0
            for connection in owned:
                if not any(allows_connection(grant, connection) for grant in left):
                    await repo_connections.soft_delete(
                        conn, row["account_id"], connection["repo_connection_uuid"], now
                    )
                    gone += 1
        return gone

    # --- the checks (inside the callers' transactions) ------------------------------------------

    async def everything_granted(self, conn: Connection) -> bool:
        if self._settings.grants == "all":
            return True
        # Once several, always several: accounts are never deleted, so the count is read only
        # while there is one (another process, `buildsd accounts create`, may add the second).
        if not self._several:
            self._several = await accounts.several(conn)
        return not self._several

    async def check_connection(
        self, conn: Connection, account_id: str, connection: Mapping[str, str]
    ) -> None:
        """RepositoryNotGranted unless the account may connect this repository."""
        if await self.everything_granted(conn):
            return
        for row in await grants.of_account(conn, account_id):
            if allows_connection(grants.to_wire(row), connection):
                return
        raise RepositoryNotGranted(
            f"no grant of this account covers {connection['provider_type']} account "
            f"{connection['provider_account_id']} ({connection['provider_account_name']}), "
            f"repository {connection['repo_id']} ({connection['repo_name']}); the operator adds "
            "one with `buildsd grants add`"
        )

    async def within(self, conn: Connection, listeners: list[Row], delivery: Row) -> list[Row]:
        """The listeners (connection rows with account_id, provider_type) whose account has a
        grant covering the delivery's repository; the others never see it."""
        if not listeners or await self.everything_granted(conn):
            return listeners
        granted: dict[str, list[Grant]] = {}
        for account_id in dict.fromkeys(item["account_id"] for item in listeners):
            granted[account_id] = [
                grants.to_wire(g) for g in await grants.of_account(conn, account_id)
            ]
        kept = [
            item
            for item in listeners
            if any(
                allows_delivery(grant, item["provider_type"], delivery)
                for grant in granted[item["account_id"]]
            )
        ]
        for account_id in granted.keys() - {item["account_id"] for item in kept}:
            log.info(
                "webhook delivery %s: repository %s is outside account %s's grants; not matched",
                delivery["delivery_uuid"],
                delivery["repo_id"],
                account_id,
            )
        return kept

    async def repository(
        self,
        conn: Connection,
        account_id: str,
        provider_type: str,
        provider_account_id: str,
        repo_id: str,
    ) -> Mapping[str, str] | None:
        """What config autofill may clone: the account's connection of the repository while
        it is inside the grants, else a repository a grant lists; None for anything else."""
        everything = await self.everything_granted(conn)
        owned = [
            grant
            for grant in map(grants.to_wire, await grants.of_account(conn, account_id))
            if grant.provider_type == provider_type
            and grant.provider_account_id == provider_account_id
        ]
        row = await repo_connections.find_by_repo(conn, account_id, provider_type, repo_id)
        if (
            row is not None
            and row["provider_account_id"] == provider_account_id
            and (everything or any(allows_connection(grant, row) for grant in owned))
        ):
            return row
        for grant in owned:
            for repo in grant.repositories:
                if repo.repo_id == repo_id:
                    return {
                        "provider_type": provider_type,
                        "provider_account_id": provider_account_id,
                        "provider_account_name": grant.provider_account_name,
                        "repo_id": repo_id,
                        "repo_name": repo.repo_name,
                    }
        return None
