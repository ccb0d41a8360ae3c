"""Accounts and who is a member of them."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store import required
from buildsd.wire import Account, AccountSettings, Page

_COLUMNS = "id, name, created_on"


def to_wire(row: Row) -> Account:
    return Account(
        id=row["id"],
        name=row["name"],
        type="standard",
        settings=AccountSettings(),
        created_on=row["created_on"],
    )


async def insert(conn: Connection, *, id: str, name: str, created_on: str) -> None:
    await conn.run(
        "INSERT INTO accounts (id, name, created_on) VALUES (:id, :name, :created_on)",
        {"id": id, "name": name, "created_on": created_on},
    )


async def find(conn: Connection, account_id: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM accounts WHERE id = :id",
        {"id": account_id},
    )


async def get(conn: Connection, account_id: str) -> Row:
    return required(await find(conn, account_id))


async def exists(conn: Connection, account_id: str) -> bool:
    return await find(conn, account_id) is not None


async def list_all(conn: Connection) -> list[Row]:
    return await conn.all(f"SELECT {_COLUMNS} FROM accounts ORDER BY created_on, id")


async def page_of(conn: Connection, account_ids: list[str], page: Page) -> tuple[list[Row], int]:
    """A page of the given accounts in creation order, and how many there are in all."""
    if not account_ids:
        return [], 0
    names = {f"a{i}": account_id for i, account_id in enumerate(account_ids)}
    inlist = ", ".join(f":{name}" for name in names)
    total_row = await conn.one(f"SELECT COUNT(*) AS n FROM accounts WHERE id IN ({inlist})", names)
    rows = await conn.all(
        f"SELECT {_COLUMNS} FROM accounts WHERE id IN ({inlist}) "
        "ORDER BY created_on, id LIMIT :limit OFFSET :offset",
        {**names, "limit": page.per_page, "offset": page.offset},
    )
    return rows, int(total_row["n"]) if total_row else 0


async def add_member(conn: Connection, *, account_id: str, user_id: str, created_on: str) -> None:
    await conn.run(
        "INSERT INTO account_members (account_id, user_id, created_on) "
        "VALUES (:account_id, :user_id, :created_on) ON CONFLICT DO NOTHING",
        {"account_id": account_id, "user_id": user_id, "created_on": created_on},
    )


async def member_account_ids(conn: Connection, user_id: str) -> list[str]:
    rows = await conn.all(
        "SELECT account_id FROM account_members WHERE user_id = :user_id ORDER BY account_id",
        {"user_id": user_id},
    )
    return [row["account_id"] for row in rows]


async def several(conn: Connection) -> bool:
    """More than one account (reads two index entries at most, whatever the count)."""
    return await conn.one("SELECT 1 AS n FROM accounts LIMIT 1 OFFSET 1") is not None
