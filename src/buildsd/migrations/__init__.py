"""Numbered Alembic revisions and the two calls the rest of buildsd needs: upgrade and head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

HERE = Path(__file__).parent


def sqlalchemy_url(database_url: str) -> str:
    """BUILDSD_DATABASE_URL as SQLAlchemy wants it (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def _config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`; forward only."""
    command.upgrade(_config(database_url), revision)


def head() -> str:
    """The newest revision id shipped with this version of buildsd."""
    heads = ScriptDirectory.from_config(_config("sqlite://")).get_heads()
    return heads[0]
