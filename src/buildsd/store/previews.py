"""Worker Previews: a Worker's Previews settings row and its Previews, one per branch."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store import paged, required
from buildsd.wire import Page

_COLUMNS = (
    "preview_id, account_id, external_script_id, branch, trigger_uuid, "
    "delete_on_branch_delete, created_on, modified_on"
)


# --- the Worker's Previews settings -----------------------------------------------------------


async def config(conn: Connection, account_id: str, tag: str) -> Row | None:
    return await conn.one(
        "SELECT account_id, external_script_id, trigger_uuid, previews_enabled "
        "FROM previews_configs WHERE account_id = :account_id AND external_script_id = :tag",
        {"account_id": account_id, "tag": tag},
    )


async def put_config(
    conn: Connection, account_id: str, tag: str, trigger_uuid: str, enabled: bool, now: str
) -> None:
    await conn.run(
        "INSERT INTO previews_configs (account_id, external_script_id, trigger_uuid, "
        "previews_enabled, created_on, modified_on) "
        "VALUES (:account_id, :tag, :trigger_uuid, :enabled, :now, :now) "
        "ON CONFLICT (account_id, external_script_id) DO UPDATE SET "
        "trigger_uuid = excluded.trigger_uuid, previews_enabled = excluded.previews_enabled, "
        "modified_on = excluded.modified_on",
        {
            "account_id": account_id,
            "tag": tag,
            "trigger_uuid": trigger_uuid,
            "enabled": enabled,
            "now": now,
        },
    )


async def delete_config(conn: Connection, account_id: str, tag: str) -> None:
    await conn.run(
        "DELETE FROM previews_configs WHERE account_id = :account_id AND external_script_id = :tag",
        {"account_id": account_id, "tag": tag},
    )


async def configs_of_connection(conn: Connection, repo_connection_uuid: str) -> list[Row]:
    """The Previews settings (on) of every Worker building from this connection."""
    return await conn.all(
        "SELECT c.account_id, c.external_script_id, c.trigger_uuid FROM previews_configs c "
        "JOIN triggers t ON t.trigger_uuid = c.trigger_uuid "
        "WHERE t.repo_connection_uuid = :uuid AND t.deleted_on IS NULL "
        "AND c.previews_enabled = :on",
        {"uuid": repo_connection_uuid, "on": True},
    )


# --- Previews -----------------------------------------------------------------------------------


async def insert(conn: Connection, values: dict[str, object]) -> None:
    await conn.run(
        f"INSERT INTO previews ({_COLUMNS}) VALUES (:preview_id, :account_id, "
        ":external_script_id, :branch, :trigger_uuid, :delete_on_branch_delete, :created_on, "
        ":modified_on)",
        values,
    )


async def find(conn: Connection, account_id: str, tag: str, preview_id: str) -> Row | None:
    """A Preview of this Worker of this account (any other is simply absent)."""
    return await conn.one(
        f"SELECT {_COLUMNS} FROM previews WHERE preview_id = :id "
        "AND account_id = :account_id AND external_script_id = :tag",
        {"id": preview_id, "account_id": account_id, "tag": tag},
    )


async def get(conn: Connection, account_id: str, tag: str, preview_id: str) -> Row:
    return required(await find(conn, account_id, tag, preview_id))


async def of_branch(conn: Connection, account_id: str, tag: str, branch: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM previews WHERE account_id = :account_id "
        "AND external_script_id = :tag AND branch = :branch",
        {"account_id": account_id, "tag": tag, "branch": branch},
    )


async def all_of_worker(conn: Connection, account_id: str, tag: str) -> list[Row]:
    return await conn.all(
        f"SELECT {_COLUMNS} FROM previews WHERE account_id = :account_id "
        "AND external_script_id = :tag ORDER BY created_on, preview_id",
        {"account_id": account_id, "tag": tag},
    )


async def page(conn: Connection, account_id: str, tag: str, page: Page) -> tuple[list[Row], int]:
    where = "FROM previews WHERE account_id = :account_id AND external_script_id = :tag"
    return await paged(
        conn,
        f"SELECT COUNT(*) AS n {where}",
        f"SELECT {_COLUMNS} {where} ORDER BY created_on, preview_id",
        {"account_id": account_id, "tag": tag},
        page,
    )


async def update(conn: Connection, preview_id: str, changes: dict[str, object], now: str) -> None:
    sets = ", ".join(f"{name} = :{name}" for name in changes)
    await conn.run(
        f"UPDATE previews SET {sets}, modified_on = :now WHERE preview_id = :preview_id",
        {**changes, "now": now, "preview_id": preview_id},
    )


async def delete(conn: Connection, preview_id: str) -> None:
    await conn.run("DELETE FROM previews WHERE preview_id = :id", {"id": preview_id})


async def owned(conn: Connection, account_id: str, tag: str) -> set[str]:
    """The trigger rows of a Worker that hold Previews settings, not triggers of their own."""
    rows = await conn.all(
        "SELECT trigger_uuid FROM previews_configs WHERE account_id = :account_id "
        "AND external_script_id = :tag UNION ALL SELECT trigger_uuid FROM previews "
        "WHERE account_id = :account_id AND external_script_id = :tag",
        {"account_id": account_id, "tag": tag},
    )
    return {row["trigger_uuid"] for row in rows}


async def owns(conn: Connection, trigger_uuid: str) -> bool:
    """Whether this trigger row holds a Preview's build settings (its builds are previews)."""
    row = await conn.one(
        "SELECT 1 AS x FROM previews WHERE trigger_uuid = :uuid", {"uuid": trigger_uuid}
    )
    return row is not None


async def latest_builds(conn: Connection, trigger_uuid: str) -> tuple[Row | None, Row | None]:
    """(latest build, latest successful build) of a Preview's trigger."""
    latest = await conn.one(
        "SELECT build_uuid FROM builds WHERE trigger_uuid = :uuid "
        "ORDER BY created_on DESC, seq DESC LIMIT 1",
        {"uuid": trigger_uuid},
    )
    deployed = await conn.one(
        "SELECT build_uuid, stopped_on, preview_url FROM builds WHERE trigger_uuid = :uuid "
        "AND build_outcome = 'success' ORDER BY created_on DESC, seq DESC LIMIT 1",
        {"uuid": trigger_uuid},
    )
    return latest, deployed


async def builds_page(conn: Connection, trigger_uuid: str, page: Page) -> tuple[list[Row], int]:
    """Newest first, a Preview's builds (its trigger's), as store.builds rows."""
    where = "FROM builds WHERE trigger_uuid = :uuid"
    return await paged(
        conn,
        f"SELECT COUNT(*) AS n {where}",
        f"SELECT * {where} ORDER BY created_on DESC, seq DESC",
        {"uuid": trigger_uuid},
        page,
    )
