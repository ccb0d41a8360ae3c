"""Numbered Alembic revisions and the calls the rest of buildsd needs: upgrade and head.

A new SQLite database gets its schema from `sqlite_template.sql` (the SQL a fresh migration to
head leaves, dumped by `python -m buildsd.migrations.template`; tests check it is current) in
one executescript, not from running every revision through Alembic: with Alembic and SQLAlchemy
imported for it, that was ~0.5 s of `buildsd emulate`'s start-up on a busy machine. A database
already at head is left alone without importing Alembic either. Everything else (an older
schema, PostgreSQL's upgrades) goes through Alembic as before.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SQLITE_TEMPLATE = HERE / "sqlite_template.sql"
_REVISION = re.compile(r'^(down_)?revision\s*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


def sqlalchemy_url(database_url: str) -> str:
    """BUILDSD_DATABASE_URL as SQLAlchemy wants it (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def _config(database_url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`; forward only. A new SQLite database to head
    comes from the template; one at head already is left as it is."""
    if revision == "head":
        if database_url.startswith("sqlite:") and _from_template(database_url):
            return
        if current(database_url) == head():
            return
    alembic_upgrade(database_url, revision)


def alembic_upgrade(database_url: str, revision: str = "head") -> None:
    """Every revision through Alembic (what the template is made from)."""
    from alembic import command

    command.upgrade(_config(database_url), revision)


@cache
def head() -> str:
    """The newest revision id shipped with this version of buildsd: the one no other revision
    names as its down_revision (the history is one line; tests compare with Alembic's)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (HERE / "versions").glob("[0-9]*.py"):
        for down, value in _REVISION.findall(path.read_text()):
            (parents if down else revisions).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations: expected one head, found {sorted(heads)}")
    return heads.pop()


def current(database_url: str) -> str | None:
    """The revision the database records (None: none yet), read without Alembic."""
    if database_url.startswith("sqlite:"):
        path = _sqlite_file(database_url)
        if path is None or not Path(path).exists():
            return None
        with contextlib.closing(sqlite3.connect(path)) as conn:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:  # no such table: never migrated
                return None
        return str(row[0]) if row else None
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as pg:
        found = pg.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return None
        row = pg.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def _sqlite_file(database_url: str) -> str | None:
    path = database_url.split(":///", 1)[1] if ":///" in database_url else ""
    return None if path in ("", ":memory:") else path


def template_revision() -> str | None:
    """The revision the SQLite template records, or None without a template."""
    if not SQLITE_TEMPLATE.exists():
        return None
    found = re.search(r"INSERT INTO \"alembic_version\" VALUES\('([^']+)'\)", _template())
    return found.group(1) if found else None


@cache
def _template() -> str:
    return SQLITE_TEMPLATE.read_text()


def _from_template(database_url: str) -> bool:
    """Make a new (absent or empty) SQLite database from the template; False when the database
    has anything in it already, or the template is not of this version's head."""
    path = _sqlite_file(database_url)
    if path is None or template_revision() != head():
        return False
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")  # a second process making it at once waits here
        try:
            if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                conn.execute("ROLLBACK")
                return False
            # Statement by statement in this transaction: executescript would COMMIT first,
            # and each statement would then commit (and sync) alone, ~0.7 s in all.
            for statement in _template_statements():
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return True


@cache
def _template_statements() -> tuple[str, ...]:
    """The template's statements but the dump's own BEGIN and COMMIT."""
    statements, pending = [], ""
    for line in _template().splitlines(keepends=True):
        if not pending and line.startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return tuple(s for s in statements if s not in ("BEGIN TRANSACTION;", "COMMIT;"))
