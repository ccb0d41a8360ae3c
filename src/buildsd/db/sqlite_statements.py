"""SQLite statements as the connection runs them: `:name` placeholders bound by number, and
each statement's rows turned into dicts by a function made for it."""

from __future__ import annotations

import operator
import re
import sqlite3
from collections.abc import Callable
from typing import Any

RowMaker = Callable[[tuple[Any, ...]], dict[str, Any]]
_row_makers: dict[str, RowMaker] = {}


def row_maker(sql: str, cursor: sqlite3.Cursor) -> RowMaker:
    """A function turning one row of `sql` into a dict, made once per statement.

    Why: dict(zip(names, row)) goes through the generic mapping constructor for each row; the
    dict display compiled for the statement's columns took 15 % off a 50-build page's
    instructions (make bench-instructions). Column names are spelled with repr: any is safe.
    """
    maker = _row_makers.get(sql)
    if maker is None:
        names = (column[0] for column in cursor.description)
        pairs = ", ".join(f"{name!r}: row[{i}]" for i, name in enumerate(names))
        maker = eval(f"lambda row: {{{pairs}}}")  # noqa: S307 - built from column names only
        if len(_row_makers) < 10_000:  # statements are a fixed set; bounded all the same
            _row_makers[sql] = maker
    return maker


Positional = tuple[str, Callable[[Any], tuple[Any, ...]]]
positional: dict[str, Positional] = {}
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # as db/postgres.py reads placeholders


def to_positional(sql: str) -> Positional:
    """`sql` with its `:name` placeholders numbered (`?1`, `?2`, …), and the function picking
    their values out of a params mapping, in order; made once per statement.

    Why: binding by name, the sqlite3 module makes a string of each parameter's name and
    looks it up in the mapping, every time; by number it takes the tuple's items, and
    operator.itemgetter builds that tuple in C. An audited write binds 20-odd parameters.
    """
    numbers: dict[str, int] = {}

    def number(found: re.Match[str]) -> str:
        return f"?{numbers.setdefault(found.group(1), len(numbers) + 1)}"

    numbered = _NAMED.sub(number, sql)
    names = list(numbers)
    pick: Callable[[Any], tuple[Any, ...]]
    if len(names) == 1:
        one = operator.itemgetter(names[0])
        pick = lambda params: (one(params),)  # noqa: E731 - itemgetter of one is no tuple
    elif names:
        pick = operator.itemgetter(*names)
    else:
        pick = lambda params: ()  # noqa: E731
    found = (numbered, pick)
    if len(positional) < 10_000:  # statements are a fixed set; bounded all the same
        positional[sql] = found
    return found
