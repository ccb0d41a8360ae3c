"""Deploy hooks of a Worker: hard-deleted, one name per Worker, listed with their latest build."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store import required
from buildsd.wire import DeployHook, DetailedDeployHook, LatestBuild

_COLUMNS = (
    "deploy_hook_uuid, account_id, external_script_id, deploy_hook_name, branch, "
    "created_on, modified_on"
)


def to_wire(row: Row) -> DeployHook:
    return DeployHook(
        deploy_hook_uuid=row["deploy_hook_uuid"],
        deploy_hook_name=row["deploy_hook_name"],
        branch=row["branch"],
        external_script_id=row["external_script_id"],
        created_on=row["created_on"],
        modified_on=row["modified_on"],
    )


def to_detailed(row: Row) -> DetailedDeployHook:
    latest = row["latest_build_on"]
    return DetailedDeployHook(
        deploy_hook_uuid=row["deploy_hook_uuid"],
        deploy_hook_name=row["deploy_hook_name"],
        branch=row["branch"],
        external_script_id=row["external_script_id"],
        created_on=row["created_on"],
        modified_on=row["modified_on"],
        latest_build=LatestBuild(created_on=latest) if latest is not None else None,
    )


async def insert(
    conn: Connection,
    *,
    deploy_hook_uuid: str,
    account_id: str,
    tag: str,
    deploy_hook_name: str,
    branch: str,
    now: str,
) -> None:
    await conn.run(
        "INSERT INTO deploy_hooks (deploy_hook_uuid, account_id, external_script_id, "
        "deploy_hook_name, branch, created_on, modified_on) "
        "VALUES (:uuid, :account_id, :tag, :name, :branch, :now, :now)",
        {
            "uuid": deploy_hook_uuid,
            "account_id": account_id,
            "tag": tag,
            "name": deploy_hook_name,
            "branch": branch,
            "now": now,
        },
    )


async def find(conn: Connection, account_id: str, tag: str, deploy_hook_uuid: str) -> Row | None:
    """A hook of this Worker of this account (any other hook is simply absent)."""
    return await conn.one(
        f"SELECT {_COLUMNS} FROM deploy_hooks WHERE deploy_hook_uuid = :uuid "
        "AND account_id = :account_id AND external_script_id = :tag",
        {"uuid": deploy_hook_uuid, "account_id": account_id, "tag": tag},
    )


async def get(conn: Connection, account_id: str, tag: str, deploy_hook_uuid: str) -> Row:
    return required(await find(conn, account_id, tag, deploy_hook_uuid))


async def get_any(conn: Connection, deploy_hook_uuid: str) -> Row:
    """A hook by its uuid alone: the unauthenticated trigger URL names nothing else."""
    return required(
        await conn.one(
            f"SELECT {_COLUMNS} FROM deploy_hooks WHERE deploy_hook_uuid = :uuid",
            {"uuid": deploy_hook_uuid},
        )
    )


async def find_by_name(conn: Connection, account_id: str, tag: str, name: str) -> Row | None:
    return await conn.one(
        f"SELECT {_COLUMNS} FROM deploy_hooks WHERE account_id = :account_id "
        "AND external_script_id = :tag AND deploy_hook_name = :name",
        {"account_id": account_id, "tag": tag, "name": name},
    )


async def list_for_worker(conn: Connection, account_id: str, tag: str) -> list[Row]:
    """Creation order, each with `latest_build_on`: when it last started a build, or NULL.

    The subquery walks the Worker's builds newest first along the (account_id,
    external_script_id, created_on) index and stops at the hook's latest one; a hook that never
    built reads them all (an index on builds(deploy_hook_uuid, created_on) would end that).
    """
    return await conn.all(
        "SELECT h.deploy_hook_uuid, h.account_id, h.external_script_id, h.deploy_hook_name, "
        "h.branch, h.created_on, h.modified_on, (SELECT b.created_on FROM builds b "
        "WHERE b.account_id = h.account_id AND b.external_script_id = h.external_script_id "
        "AND b.deploy_hook_uuid = h.deploy_hook_uuid "
        "ORDER BY b.created_on DESC LIMIT 1) AS latest_build_on "
        "FROM deploy_hooks h WHERE h.account_id = :account_id AND h.external_script_id = :tag "
        "ORDER BY h.created_on, h.deploy_hook_uuid",
        {"account_id": account_id, "tag": tag},
    )


async def update(
    conn: Connection, deploy_hook_uuid: str, *, deploy_hook_name: str, branch: str, now: str
) -> None:
    await conn.run(
        "UPDATE deploy_hooks SET deploy_hook_name = :name, branch = :branch, modified_on = :now "
        "WHERE deploy_hook_uuid = :uuid",
        {"uuid": deploy_hook_uuid, "name": deploy_hook_name, "branch": branch, "now": now},
    )


async def delete(conn: Connection, deploy_hook_uuid: str) -> None:
    await conn.run(
        "DELETE FROM deploy_hooks WHERE deploy_hook_uuid = :uuid", {"uuid": deploy_hook_uuid}
    )
