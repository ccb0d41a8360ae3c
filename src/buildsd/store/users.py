"""Users: an email and the hash of their Global API Key."""

from __future__ import annotations

from buildsd.db import Connection, Row

_COLUMNS = "id, email, api_key_hash, created_on"


async def insert(
    conn: Connection, *, id: str, email: str, api_key_hash: str, created_on: str
) -> None:
    await conn.run(
        "INSERT INTO users (id, email, api_key_hash, created_on) "
        "VALUES (:id, :email, :api_key_hash, :created_on)",
        {"id": id, "email": email, "api_key_hash": api_key_hash, "created_on": created_on},
    )


async def find_by_email(conn: Connection, email: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM users WHERE email = :email",
        {"email": email},
    )


async def find(conn: Connection, user_id: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM users WHERE id = :id",
        {"id": user_id},
    )


async def first(conn: Connection) -> Row | None:
    """The administrator: the first user ever made (at bootstrap)."""
    return await conn.one(f"SELECT {_COLUMNS} FROM users ORDER BY created_on, id LIMIT 1")
