"""Repository connections: one row per (account, provider_type, repo_id), soft-deleted."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store import paged, required
from buildsd.wire import Page, RepoConnection

_COLUMNS = (
    "repo_connection_uuid, provider_type, provider_account_id, provider_account_name, "
    "repo_id, repo_name, created_on, modified_on, deleted_on"
)

# One statement, so concurrent PUTs of one repository can only ever make one row (D5): the
# unique key decides, the loser updates. A PUT of a soft-deleted connection revives it.
_UPSERT = (
    "INSERT INTO repo_connections (repo_connection_uuid, account_id, provider_type, "
    "provider_account_id, provider_account_name, repo_id, repo_name, created_on, modified_on, "
    "deleted_on) VALUES (:repo_connection_uuid, :account_id, :provider_type, "
    ":provider_account_id, :provider_account_name, :repo_id, :repo_name, :now, :now, NULL) "
    "ON CONFLICT (account_id, provider_type, repo_id) DO UPDATE SET "
    "provider_account_id = excluded.provider_account_id, "
    "provider_account_name = excluded.provider_account_name, "
    "repo_name = excluded.repo_name, modified_on = excluded.modified_on, deleted_on = NULL "
    f"RETURNING {_COLUMNS}"
)


# A re-PUT of a live connection, the usual upsert, goes first (services/repo_connections.py):
# an UPDATE that leaves deleted_on out of its SET touches neither the live-connections index
# nor the count trigger (0010), which the INSERT … ON CONFLICT's update does (it sets
# deleted_on). When it finds no live row (a new or a soft-deleted connection) the
# one-statement upsert above decides, concurrency and all.
_UPDATE_LIVE = (
    "UPDATE repo_connections SET provider_account_id = :provider_account_id, "
    "provider_account_name = :provider_account_name, repo_name = :repo_name, "
    "modified_on = :now WHERE account_id = :account_id AND provider_type = :provider_type "
    f"AND repo_id = :repo_id AND deleted_on IS NULL RETURNING {_COLUMNS}"
)


def to_wire(row: Row) -> RepoConnection:
    return RepoConnection(
        repo_connection_uuid=row["repo_connection_uuid"],
        provider_type=row["provider_type"],
        provider_account_id=row["provider_account_id"],
        provider_account_name=row["provider_account_name"],
        repo_id=row["repo_id"],
        repo_name=row["repo_name"],
        created_on=row["created_on"],
        modified_on=row["modified_on"],
        deleted_on=row["deleted_on"],
    )


async def update_live(conn: Connection, **values: str) -> Row | None:
    """The re-PUT of a live connection (_UPDATE_LIVE), or None when there is none. `values`:
    account_id, provider_type, provider_account_id, provider_account_name, repo_id, repo_name
    and now, as the statement names them."""
    return await conn.one(_UPDATE_LIVE, values)


async def upsert(conn: Connection, **values: str) -> Row:
    """_UPSERT: update_live's values and the repo_connection_uuid a new row gets."""
    row = await conn.one(_UPSERT, values)
    assert row is not None  # RETURNING always yields the row
    return row


async def find(conn: Connection, account_id: str, repo_connection_uuid: str) -> Row | None:
    """A live connection of this account, or None (another account's id is simply absent)."""
    return await conn.one(
        f"SELECT {_COLUMNS} FROM repo_connections "
        "WHERE repo_connection_uuid = :uuid AND account_id = :account_id "
        "AND deleted_on IS NULL",
        {"uuid": repo_connection_uuid, "account_id": account_id},
    )


async def get(conn: Connection, account_id: str, repo_connection_uuid: str) -> Row:
    return required(await find(conn, account_id, repo_connection_uuid))


async def soft_delete(
    conn: Connection, account_id: str, repo_connection_uuid: str, now: str
) -> bool:
    count = await conn.run(
        "UPDATE repo_connections SET deleted_on = :now, modified_on = :now "
        "WHERE repo_connection_uuid = :uuid AND account_id = :account_id AND deleted_on IS NULL",
        {"uuid": repo_connection_uuid, "account_id": account_id, "now": now},
    )
    return count > 0


async def page(
    conn: Connection,
    account_id: str,
    page: Page,
    *,
    provider_type: str | None = None,
    repo_id: str | None = None,
) -> tuple[list[Row], int]:
    """Live connections in creation order (index on account_id, created_on), and their total."""
    where = "account_id = :account_id AND deleted_on IS NULL"
    params: dict[str, object] = {"account_id": account_id}
    if provider_type is not None:
        where += " AND provider_type = :provider_type"
        params["provider_type"] = provider_type
    if repo_id is not None:
        where += " AND repo_id = :repo_id"
        params["repo_id"] = repo_id
    # Unfiltered, the total is the account's counter (migration 0010); a filter counts rows.
    count = (
        f"SELECT COUNT(*) AS n FROM repo_connections WHERE {where}"
        if len(params) > 1
        else "SELECT COALESCE(MAX(live_count), 0) AS n FROM account_connection_counts "
        "WHERE account_id = :account_id"
    )
    return await paged(
        conn,
        count,
        f"SELECT {_COLUMNS} FROM repo_connections WHERE {where} "
        "ORDER BY created_on, repo_connection_uuid",
        params,
        page,
    )


async def find_by_repo(
    conn: Connection, account_id: str, provider_type: str, repo_id: str
) -> Row | None:
    """The live connection of this account for one repository (the upsert key, D5), or None."""
    return await conn.one(
        f"SELECT {_COLUMNS} FROM repo_connections "
        "WHERE account_id = :account_id AND provider_type = :provider_type "
        "AND repo_id = :repo_id AND deleted_on IS NULL",
        {"account_id": account_id, "provider_type": provider_type, "repo_id": repo_id},
    )


async def live_of_owner(
    conn: Connection, account_id: str, provider_type: str, provider_account_id: str
) -> list[Row]:
    """The account's live connections of one provider account (revoking a grant reads them)."""
    return await conn.all(
        f"SELECT {_COLUMNS} FROM repo_connections WHERE account_id = :account_id "
        "AND deleted_on IS NULL AND provider_type = :provider_type "
        "AND provider_account_id = :provider_account_id ORDER BY created_on",
        {
            "account_id": account_id,
            "provider_type": provider_type,
            "provider_account_id": provider_account_id,
        },
    )
