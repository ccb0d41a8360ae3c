"""The numbered migrations build exactly the schema tables.py declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from buildsd import migrations, tables


def test_migrations_match_the_table_definitions(database_url: str) -> None:
    engine = create_engine(migrations.sqlalchemy_url(database_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == migrations.head()
        assert compare_metadata(context, tables.metadata) == []
    engine.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    migrations.upgrade(database_url)
    migrations.upgrade(database_url)
