"""The numbered migrations build exactly the schema tables.py declares."""

from __future__ import annotations

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
