"""Cloudflare API tokens (the credentials callers present), stored by the hash of their secret."""

from __future__ import annotations

from typing import Any

import msgspec

from buildsd.db import Connection, Row

_COLUMNS = (
    "id, secret_hash, name, owner_type, user_id, account_id, status, policies, "
    "not_before, expires_on, issued_on, modified_on, revoked_on"
)


async def insert(conn: Connection, **values: Any) -> None:
    values = {**values, "policies": msgspec.json.encode(values["policies"]).decode()}
    await conn.run(
        f"INSERT INTO api_tokens ({_COLUMNS}) VALUES "
        "(:id, :secret_hash, :name, :owner_type, :user_id, :account_id, :status, :policies, "
        ":not_before, :expires_on, :issued_on, :modified_on, :revoked_on)",
        values,
    )


async def find_by_hash(conn: Connection, secret_hash: str) -> Row | None:
    """A token that has not been revoked, by the hash of its secret."""
    return await conn.one(
        f"SELECT {_COLUMNS} FROM api_tokens "
        "WHERE secret_hash = :secret_hash AND revoked_on IS NULL",
        {"secret_hash": secret_hash},
    )


async def list_for_account(conn: Connection, account_id: str) -> list[Row]:
    """Tokens made for this account (account-owned, or user-owned scoped to it), oldest first."""
    return await conn.all(
        f"SELECT {_COLUMNS} FROM api_tokens "
        "WHERE account_id = :account_id AND revoked_on IS NULL ORDER BY issued_on, id",
        {"account_id": account_id},
    )


async def revoke(conn: Connection, token_id: str, when: str) -> bool:
    count = await conn.run(
        "UPDATE api_tokens SET revoked_on = :when, modified_on = :when "
        "WHERE id = :id AND revoked_on IS NULL",
        {"id": token_id, "when": when},
    )
    return count > 0


def policies(row: Row) -> list[dict[str, Any]]:
    decoded: list[dict[str, Any]] = msgspec.json.decode(row["policies"])
    return decoded
