"""A Worker's script state on its `workers` row (D24), and the account's workers.dev subdomain."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.wire import Page

_COLUMNS = (
    "tag, account_id, name, created_on, modified_on, etag, script, deployment_id, "
    "subdomain_enabled, previews_enabled"
)


async def find(conn: Connection, account_id: str, name: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM workers WHERE account_id = :account_id AND name = :name",
        {"account_id": account_id, "name": name},
    )


async def lock(conn: Connection, account_id: str, name: str) -> bool:
    """Take the Worker row's write lock until the transaction ends; False if there is none
    (a no-op UPDATE, as store.workers.lock: it locks on SQLite and PostgreSQL alike)."""
    count = await conn.run(
        "UPDATE workers SET name = name WHERE account_id = :account_id AND name = :name",
        {"account_id": account_id, "name": name},
    )
    return count > 0


async def page(conn: Connection, account_id: str, page: Page) -> list[Row]:
    """A page in creation order, from the (account_id, created_on, tag) index."""
    return await conn.all(
        f"SELECT {_COLUMNS} FROM workers WHERE account_id = :account_id "
        "ORDER BY created_on, tag LIMIT :limit OFFSET :offset",
        {"account_id": account_id, "limit": page.per_page, "offset": page.offset},
    )


async def count(conn: Connection, account_id: str) -> int:
    """The account's Workers: its counter row (migration 0013), not a COUNT(*) over them."""
    row = await conn.one(
        "SELECT COALESCE(MAX(worker_count), 0) AS n FROM account_worker_counts "
        "WHERE account_id = :account_id",
        {"account_id": account_id},
    )
    return int(row["n"]) if row else 0


async def set_script(
    conn: Connection,
    *,
    tag: str,
    script: str,
    etag: str,
    deployment_id: str | None,
    now: str,
) -> None:
    await conn.run(
        "UPDATE workers SET script = :script, etag = :etag, modified_on = :now, "
        "deployment_id = COALESCE(:deployment_id, deployment_id) WHERE tag = :tag",
        {"tag": tag, "script": script, "etag": etag, "deployment_id": deployment_id, "now": now},
    )


async def set_settings(conn: Connection, *, tag: str, script: str, now: str) -> None:
    await conn.run(
        "UPDATE workers SET script = :script, modified_on = :now WHERE tag = :tag",
        {"tag": tag, "script": script, "now": now},
    )


async def set_subdomain(
    conn: Connection, *, tag: str, enabled: bool, previews_enabled: bool
) -> None:
    await conn.run(
        "UPDATE workers SET subdomain_enabled = :enabled, previews_enabled = :previews "
        "WHERE tag = :tag",
        {"tag": tag, "enabled": enabled, "previews": previews_enabled},
    )


async def delete(conn: Connection, tag: str) -> None:
    """The Worker and everything the Workers platform holds of it (its Builds rows stay)."""
    params = {"tag": tag}
    await conn.run(
        "DELETE FROM worker_version_parts WHERE version_id IN "
        "(SELECT id FROM worker_versions WHERE tag = :tag)",
        params,
    )
    await conn.run("DELETE FROM worker_deployments WHERE tag = :tag", params)
    await conn.run("DELETE FROM worker_versions WHERE tag = :tag", params)
    await conn.run("DELETE FROM workers WHERE tag = :tag", params)


async def account_subdomain(conn: Connection, account_id: str) -> str | None:
    row = await conn.one(
        "SELECT subdomain FROM workers_subdomains WHERE account_id = :account_id",
        {"account_id": account_id},
    )
    return str(row["subdomain"]) if row else None


async def put_subdomain(conn: Connection, account_id: str, subdomain: str) -> None:
    """The account's subdomain; IntegrityError when another account holds that one."""
    await conn.run(
        "INSERT INTO workers_subdomains (account_id, subdomain) VALUES (:account_id, :subdomain) "
        "ON CONFLICT (account_id) DO UPDATE SET subdomain = excluded.subdomain",
        {"account_id": account_id, "subdomain": subdomain},
    )
