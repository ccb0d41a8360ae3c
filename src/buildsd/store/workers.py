"""Workers: a tag (32 hex, on most paths) and a name (on deploy-hook paths), per account (D16)."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store import required


async def claim(conn: Connection, *, account_id: str, tag: str, now: str) -> bool:
    """Register a tag a trigger names (an unknown Worker is known by its tag until renamed) and
    lock its row; False when the tag is another account's Worker, which stays theirs (D16)."""
    await conn.run(
        "INSERT INTO workers (tag, account_id, name, created_on) "
        "VALUES (:tag, :account_id, :tag, :now) ON CONFLICT DO NOTHING",
        {"tag": tag, "account_id": account_id, "now": now},
    )
    return await lock(conn, account_id, tag)


async def insert(conn: Connection, *, account_id: str, tag: str, name: str, now: str) -> None:
    await conn.run(
        "INSERT INTO workers (tag, account_id, name, created_on) "
        "VALUES (:tag, :account_id, :name, :now)",
        {"tag": tag, "account_id": account_id, "name": name, "now": now},
    )


async def find_by_name(conn: Connection, account_id: str, name: str) -> Row | None:
    return await conn.one(
        "SELECT tag, account_id, name, created_on FROM workers "
        "WHERE account_id = :account_id AND name = :name",
        {"account_id": account_id, "name": name},
    )


async def find_by_tag(conn: Connection, account_id: str, tag: str) -> Row | None:
    return await conn.one(
        "SELECT tag, account_id, name, created_on FROM workers "
        "WHERE account_id = :account_id AND tag = :tag",
        {"account_id": account_id, "tag": tag},
    )


async def get_by_name(conn: Connection, account_id: str, name: str) -> Row:
    return required(await find_by_name(conn, account_id, name))


async def list_for_account(conn: Connection, account_id: str) -> list[Row]:
    return await conn.all(
        "SELECT tag, account_id, name, created_on FROM workers "
        "WHERE account_id = :account_id ORDER BY created_on, tag",
        {"account_id": account_id},
    )


async def lock(conn: Connection, account_id: str, tag: str) -> bool:
    """Take the Worker row's write lock until the transaction ends; False if there is no row.

    A no-op UPDATE, because it locks on SQLite and PostgreSQL alike (no FOR UPDATE on SQLite):
    two requests that check and then write one Worker's triggers or hook builds queue here.
    """
    count = await conn.run(
        "UPDATE workers SET name = name WHERE tag = :tag AND account_id = :account_id",
        {"tag": tag, "account_id": account_id},
    )
    return count > 0
