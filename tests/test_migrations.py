"""The numbered migrations build exactly the schema tables.py declares."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from buildsd import migrations, tables


def test_migrations_match_the_table_definitions(database_url: str) -> None:
    engine = create_engine(migrations.sqlalchemy_url(database_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == migrations.head()
        assert compare_metadata(context, tables.metadata) == []
    engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    """Upgrading a database that is at head again (twice) changes nothing: same revision, same
    schema, the rows a migration seeds not seeded twice."""
    before = _snapshot(database_url)
    migrations.upgrade(database_url)
    migrations.upgrade(database_url)
    assert _snapshot(database_url) == before


def _snapshot(database_url: str) -> tuple[str | None, list[str], dict[str, int]]:
    engine = create_engine(migrations.sqlalchemy_url(database_url))
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        names = sorted(inspect(connection).get_table_names())
        counts = {
            name: connection.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
            for name in names
        }
    engine.dispose()
    assert revision == migrations.head()
    return revision, names, counts


# --- the SQLite template (migrations/__init__.py) -------------------------------------------


def _schema(path: Path) -> list[str]:
    """The database as SQL, each statement's lines sorted: Alembic's batch migrations write a
    table's constraints in no fixed order, which says nothing about the schema."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return sorted(
            "\n".join(sorted(line.strip().rstrip(",") for line in statement.splitlines()))
            for statement in conn.iterdump()
        )


def test_a_new_sqlite_database_from_the_template_is_the_migrated_one(tmp_path: Path) -> None:
    migrated, templated = tmp_path / "migrated.sqlite3", tmp_path / "templated.sqlite3"
    migrations.alembic_upgrade(f"sqlite:///{migrated}")
    migrations.upgrade(f"sqlite:///{templated}")
    assert _schema(templated) == _schema(migrated)
    assert migrations.current(f"sqlite:///{templated}") == migrations.head()


def test_the_template_is_current() -> None:
    """Fails after a new migration until `make schema-template` writes the template anew."""
    from buildsd.migrations import template

    # Line by line, each without its separating comma: Alembic orders constraints freely.
    fresh = [line.strip().rstrip(",") for line in template.dump().splitlines()]
    text = migrations.SQLITE_TEMPLATE.read_text()
    kept = [line.strip().rstrip(",") for line in text.splitlines()]
    assert sorted(fresh) == sorted(kept), "run `make schema-template`"
    assert migrations.template_revision() == migrations.head()


def test_head_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations._config("sqlite://"))
    assert script.get_heads() == [migrations.head()]


def test_a_new_or_current_sqlite_database_needs_no_alembic(tmp_path: Path) -> None:
    """What `buildsd emulate` and `serve` start with: neither Alembic nor SQLAlchemy imported."""
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    code = (
        "import sys; from buildsd import migrations; "
        f"migrations.upgrade({url!r}); migrations.upgrade({url!r}); "
        "print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert migrations.current(url) == migrations.head()


def test_an_older_sqlite_database_is_upgraded_through_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrations.alembic_upgrade(url, "0010")
    migrations.upgrade(url)
    assert migrations.current(url) == migrations.head()


def test_a_stale_template_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template older than head (a migration added, the template not made anew) is passed
    over: the database is migrated, slower but right."""
    monkeypatch.setattr(migrations, "template_revision", lambda: "0015")
    path = tmp_path / "stale.sqlite3"
    migrations.upgrade(f"sqlite:///{path}")
    assert migrations.current(f"sqlite:///{path}") == migrations.head()
    migrated = tmp_path / "migrated.sqlite3"
    migrations.alembic_upgrade(f"sqlite:///{migrated}")
    assert _schema(path) == _schema(migrated)


def test_the_template_is_not_applied_over_a_database_with_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
        conn.commit()
    assert migrations._from_template(f"sqlite:///{path}") is False


def test_a_template_that_fails_midway_leaves_the_database_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template is one transaction: a statement SQLite refuses rolls back those before it,
    so the next start finds an empty database, not half a schema."""
    monkeypatch.setattr(
        migrations,
        "_template_statements",
        lambda: ("CREATE TABLE first (x INTEGER)", "CREATE TABLE broken (("),
    )
    path = tmp_path / "half.sqlite3"
    with pytest.raises(sqlite3.OperationalError):
        migrations._from_template(f"sqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    assert migrations.current(f"sqlite:///{path}") is None  # no alembic_version table yet


def test_the_table_order_is_current() -> None:
    """store/table_order.py is tables.metadata written out (make schema-template)."""
    from buildsd.migrations import template

    assert template.TABLE_ORDER.read_text() == template.table_order(), "run `make schema-template`"
