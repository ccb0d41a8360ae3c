"""SQLAlchemy Core table definitions: the schema Alembic migrates, on SQLite and PostgreSQL alike.

Times are text in the wire format (clock.now), ids are text, lists and policies are JSON text:
the same values go in and come out on both databases, with no conversion on the request path.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TIME = String(24)  # 2026-01-02T03:04:05.678Z
HEX32 = String(32)
UUID = String(36)

accounts = Table(
    "accounts",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_on", TIME, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("created_on", TIME, nullable=False),
)

account_members = Table(
    "account_members",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("user_id", HEX32, ForeignKey("users.id"), nullable=False),
    Column("created_on", TIME, nullable=False),
    PrimaryKeyConstraint("account_id", "user_id"),
    Index(None, "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    Column("owner_type", String(16), nullable=False),  # user | account
    Column("user_id", HEX32, ForeignKey("users.id"), nullable=True),
    # The account the token was made for: its owner, or the one a user token is scoped to.
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("policies", Text, nullable=False),  # JSON list of Cloudflare policy objects
    Column("not_before", TIME, nullable=True),
    Column("expires_on", TIME, nullable=True),
    Column("issued_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    Column("revoked_on", TIME, nullable=True),
    Index(None, "account_id"),
    Index(None, "user_id"),
)

repo_connections = Table(
    "repo_connections",
    metadata,
    Column("repo_connection_uuid", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("provider_type", String(32), nullable=False),
    Column("provider_account_id", String(256), nullable=False),
    Column("provider_account_name", String(256), nullable=False),
    Column("repo_id", String(256), nullable=False),
    Column("repo_name", String(256), nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    Column("deleted_on", TIME, nullable=True),
    # D5: the upsert key; one row per repository per account, whatever the concurrency.
    UniqueConstraint("account_id", "provider_type", "repo_id"),
    Index(None, "account_id", "created_on", "repo_connection_uuid"),
)
