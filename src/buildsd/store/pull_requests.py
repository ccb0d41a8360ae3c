"""Builds of pull requests not yet closed, by connection and pull request; marking them closed."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.store.builds import rerender

_KEY = "repo_connection_uuid = :connection AND pull_request_key = :key"


async def remember(conn: Connection, connection: str, key: str, build_uuid: str) -> None:
    """A build of the pull request `key` (sha256 of its url), made through `connection`."""
    await conn.run(
        "INSERT INTO pull_request_builds (repo_connection_uuid, pull_request_key, build_uuid) "
        "VALUES (:connection, :key, :build_uuid)",
        {"connection": connection, "key": key, "build_uuid": build_uuid},
    )


async def open_builds(conn: Connection, connection: str, key: str) -> list[Row]:
    """The remembered builds of the pull request, read along the primary key."""
    return await conn.all(
        "SELECT b.build_uuid, b.trigger_uuid, b.pull_request FROM pull_request_builds p "
        "JOIN builds b ON b.build_uuid = p.build_uuid "
        "WHERE p.repo_connection_uuid = :connection AND p.pull_request_key = :key "
        "ORDER BY b.build_uuid",
        {"connection": connection, "key": key},
    )


async def set_pull_request(
    conn: Connection, build_uuid: str, before: str, after: str, now: str
) -> bool:
    """Replace the build's pull_request JSON, unless it changed since it was read as `before`
    (another replica closed it at the same moment): whether this call changed it."""
    count = await conn.run(
        "UPDATE builds SET pull_request = :after, modified_on = :now "
        "WHERE build_uuid = :uuid AND pull_request = :before",
        {"uuid": build_uuid, "before": before, "after": after, "now": now},
    )
    if count:
        await rerender(conn, build_uuid)
    return count > 0


async def forget(conn: Connection, connection: str, key: str, build_uuid: str) -> None:
    await conn.run(
        f"DELETE FROM pull_request_builds WHERE {_KEY} AND build_uuid = :build_uuid",
        {"connection": connection, "key": key, "build_uuid": build_uuid},
    )
