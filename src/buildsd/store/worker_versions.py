"""A Worker's versions (with their files) and deployments, by the Worker's tag (D24)."""

from __future__ import annotations

from typing import Any

from buildsd.db import Connection, Row
from buildsd.wire import Page

_VERSION = (
    "id, account_id, tag, number, created_on, source, author_email, etag, metadata, annotations"
)
_DEPLOYMENT = (
    "id, account_id, tag, created_on, source, strategy, author_email, versions, annotations"
)


async def next_number(conn: Connection, tag: str) -> int:
    row = await conn.one(
        "SELECT COALESCE(MAX(number), 0) + 1 AS n FROM worker_versions WHERE tag = :tag",
        {"tag": tag},
    )
    return int(row["n"]) if row else 1


async def insert_version(conn: Connection, **values: Any) -> None:
    await conn.run(
        f"INSERT INTO worker_versions ({_VERSION}) VALUES (:id, :account_id, :tag, :number, "
        ":created_on, :source, :author_email, :etag, :metadata, :annotations)",
        values,
    )


async def insert_parts(conn: Connection, parts: list[dict[str, Any]]) -> None:
    await conn.many(
        "INSERT INTO worker_version_parts (version_id, name, content_type, content) "
        "VALUES (:version_id, :name, :content_type, :content)",
        parts,
    )


async def find_version(conn: Connection, tag: str, version_id: str) -> Row | None:
    return await conn.one(
        f"SELECT {_VERSION} FROM worker_versions WHERE tag = :tag AND id = :id",
        {"tag": tag, "id": version_id},
    )


async def versions_page(conn: Connection, tag: str, page: Page) -> tuple[list[Row], int]:
    """Newest first, as Cloudflare lists them."""
    rows = await conn.all(
        f"SELECT {_VERSION} FROM worker_versions WHERE tag = :tag "
        "ORDER BY number DESC LIMIT :limit OFFSET :offset",
        {"tag": tag, "limit": page.per_page, "offset": page.offset},
    )
    # Numbers run 1..n with no gap (one at a time under the Worker's lock; a version is deleted
    # only with its Worker), so the total is the last number: one entry of the (tag, number)
    # index, where COUNT(*) read every version's (D10).
    return rows, await next_number(conn, tag) - 1


async def insert_deployment(conn: Connection, **values: Any) -> None:
    await conn.run(
        f"INSERT INTO worker_deployments ({_DEPLOYMENT}, seq) VALUES (:id, :account_id, :tag, "
        ":created_on, :source, :strategy, :author_email, :versions, :annotations, :seq)",
        values,
    )


async def deployments(conn: Connection, tag: str, limit: int = 10) -> list[Row]:
    """The latest deployments, newest first (Cloudflare lists the last ten)."""
    return await conn.all(
        f"SELECT {_DEPLOYMENT} FROM worker_deployments WHERE tag = :tag "
        "ORDER BY created_on DESC, seq DESC, id DESC LIMIT :limit",
        {"tag": tag, "limit": limit},
    )


async def find_deployment(conn: Connection, tag: str, deployment_id: str) -> Row | None:
    return await conn.one(
        f"SELECT {_DEPLOYMENT} FROM worker_deployments WHERE tag = :tag AND id = :id",
        {"tag": tag, "id": deployment_id},
    )
