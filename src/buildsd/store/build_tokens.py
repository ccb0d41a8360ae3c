"""Build tokens: Cloudflare API tokens registered for deploys; the secret stored encrypted."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store import paged, required
from buildsd.wire import BuildToken, Page

_COLUMNS = "build_token_uuid, build_token_name, cloudflare_token_id, owner_type"


def to_wire(row: Row) -> BuildToken:
    return BuildToken(
        build_token_uuid=row["build_token_uuid"],
        build_token_name=row["build_token_name"],
        cloudflare_token_id=row["cloudflare_token_id"],
        owner_type=row["owner_type"],
    )


async def insert(
    conn: Connection,
    *,
    build_token_uuid: str,
    account_id: str,
    build_token_name: str,
    cloudflare_token_id: str,
    build_token_secret: str,
    now: str,
) -> None:
    await conn.run(
        "INSERT INTO build_tokens (build_token_uuid, account_id, build_token_name, "
        "cloudflare_token_id, owner_type, build_token_secret, created_on) VALUES "
        "(:build_token_uuid, :account_id, :build_token_name, :cloudflare_token_id, 'user', "
        ":build_token_secret, :now)",
        {
            "build_token_uuid": build_token_uuid,
            "account_id": account_id,
            "build_token_name": build_token_name,
            "cloudflare_token_id": cloudflare_token_id,
            "build_token_secret": build_token_secret,
            "now": now,
        },
    )


async def find(conn: Connection, account_id: str, build_token_uuid: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS}, build_token_secret FROM build_tokens "
        "WHERE build_token_uuid = :uuid AND account_id = :account_id",
        {"uuid": build_token_uuid, "account_id": account_id},
    )


async def get(conn: Connection, account_id: str, build_token_uuid: str) -> Row:
    return required(await find(conn, account_id, build_token_uuid))


async def delete(conn: Connection, account_id: str, build_token_uuid: str) -> bool:
    count = await conn.run(
        "DELETE FROM build_tokens WHERE build_token_uuid = :uuid AND account_id = :account_id",
        {"uuid": build_token_uuid, "account_id": account_id},
    )
    return count > 0


async def page(conn: Connection, account_id: str, page: Page) -> tuple[list[Row], int]:
    return await paged(
        conn,
        "SELECT COUNT(*) AS n FROM build_tokens WHERE account_id = :account_id",
        f"SELECT {_COLUMNS} FROM build_tokens WHERE account_id = :account_id "
        "ORDER BY created_on, build_token_uuid",
        {"account_id": account_id},
        page,
    )
