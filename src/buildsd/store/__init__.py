"""Queries only, one module per aggregate.

get() raises NotFound, find() returns None, page() returns a page and the total.

Store functions take a db.Connection; they never commit and know nothing of HTTP.
"""

from __future__ import annotations

from buildsd.db import Row
from buildsd.errors import NotFound


def required(row: Row | None) -> Row:
    """The row, or NotFound: what every get() is, given its find()."""
    if row is None:
        raise NotFound()
    return row
