"""Queries only, one module per aggregate.

get() raises NotFound, find() returns None, page() returns a page and the total.

Store functions take a db.Connection; they never commit and know nothing of HTTP.
"""

from __future__ import annotations

from typing import Any

from buildsd.db import Connection, Row
from buildsd.errors import NotFound
from buildsd.wire import Page


def required(row: Row | None) -> Row:
    """The row, or NotFound: what every get() is, given its find()."""
    if row is None:
        raise NotFound()
    return row


async def paged(
    conn: Connection, count_sql: str, rows_sql: str, params: dict[str, Any], page: Page
) -> tuple[list[Row], int]:
    """A page of `rows_sql` (ordered, without LIMIT) and the total `count_sql` (AS n) counts."""
    total = await conn.one(count_sql, params)
    rows = await conn.all(
        rows_sql + " LIMIT :limit OFFSET :offset",
        {**params, "limit": page.per_page, "offset": page.offset},
    )
    return rows, int(total["n"]) if total else 0
