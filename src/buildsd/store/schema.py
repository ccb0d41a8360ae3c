"""The schema revision Alembic recorded in the database."""

from __future__ import annotations

from buildsd.db import Connection


async def current_revision(conn: Connection) -> str | None:
    row = await conn.one("SELECT version_num FROM alembic_version")
    return row["version_num"] if row else None
