"""Grants: which provider accounts' repositories an account may connect (D21)."""

from __future__ import annotations

import msgspec

from buildsd.db import Connection, Row
from buildsd.store import paged, required
from buildsd.wire import Grant, GrantRepository, Page

_COLUMNS = (
    "grant_id, account_id, provider_type, provider_account_id, provider_account_name, "
    "repository_selection, repositories, created_on"
)
_repositories = msgspec.json.Decoder(list[GrantRepository])


def to_wire(row: Row) -> Grant:
    return Grant(
        grant_id=row["grant_id"],
        provider_type=row["provider_type"],
        provider_account_id=row["provider_account_id"],
        provider_account_name=row["provider_account_name"],
        repository_selection=row["repository_selection"],
        repositories=_repositories.decode(row["repositories"]),
        created_on=row["created_on"],
    )


async def insert(conn: Connection, account_id: str, grant: Grant) -> None:
    await conn.run(
        f"INSERT INTO grants ({_COLUMNS}) VALUES (:grant_id, :account_id, :provider_type, "
        ":provider_account_id, :provider_account_name, :repository_selection, :repositories, "
        ":created_on)",
        {
            **msgspec.structs.asdict(grant),
            "account_id": account_id,
            "repositories": msgspec.json.encode(grant.repositories).decode(),
        },
    )


async def of_account(conn: Connection, account_id: str) -> list[Row]:
    """Every grant of the account, oldest first (an account has a few)."""
    return await conn.all(
        f"SELECT {_COLUMNS} FROM grants WHERE account_id = :account_id "
        "ORDER BY created_on, grant_id",
        {"account_id": account_id},
    )


async def every(conn: Connection) -> list[Row]:
    """Every grant of every account, by account (the operator's list)."""
    return await conn.all(
        f"SELECT {_COLUMNS} FROM grants ORDER BY account_id, created_on, grant_id"
    )


async def find_any(conn: Connection, grant_id: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM grants WHERE grant_id = :grant_id", {"grant_id": grant_id}
    )


async def get(conn: Connection, account_id: str, grant_id: str) -> Row:
    """The account's grant; another account's is absent (404), as every other id (D6)."""
    return required(
        await conn.one(
            f"SELECT {_COLUMNS} FROM grants WHERE grant_id = :grant_id "
            "AND account_id = :account_id",
            {"grant_id": grant_id, "account_id": account_id},
        )
    )


async def page(conn: Connection, account_id: str, page: Page) -> tuple[list[Row], int]:
    """In creation order, along the (account_id, created_on, grant_id) index."""
    return await paged(
        conn,
        "SELECT COUNT(*) AS n FROM grants WHERE account_id = :account_id",
        f"SELECT {_COLUMNS} FROM grants WHERE account_id = :account_id "
        "ORDER BY created_on, grant_id",
        {"account_id": account_id},
        page,
    )


async def delete(conn: Connection, grant_id: str) -> None:
    await conn.run("DELETE FROM grants WHERE grant_id = :grant_id", {"grant_id": grant_id})
