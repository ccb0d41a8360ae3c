"""Identity (accounts, users, memberships, API tokens) and repository connections.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.String(24)
HEX32 = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", HEX32, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_table(
        "users",
        sa.Column("id", HEX32, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("api_key_hash", sa.String(64), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.UniqueConstraint("api_key_hash", name="uq_users_api_key_hash"),
    )
    op.create_table(
        "account_members",
        sa.Column("account_id", HEX32, nullable=False),
        sa.Column("user_id", HEX32, nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_account_members_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_account_members_user_id_users"),
        sa.PrimaryKeyConstraint("account_id", "user_id", name="pk_account_members"),
    )
    op.create_index("ix_account_members_user_id", "account_members", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", HEX32, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("owner_type", sa.String(16), nullable=False),
        sa.Column("user_id", HEX32, nullable=True),
        sa.Column("account_id", HEX32, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("policies", sa.Text(), nullable=False),
        sa.Column("not_before", TIME, nullable=True),
        sa.Column("expires_on", TIME, nullable=True),
        sa.Column("issued_on", TIME, nullable=False),
        sa.Column("modified_on", TIME, nullable=False),
        sa.Column("revoked_on", TIME, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_tokens_user_id_users"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_api_tokens_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("secret_hash", name="uq_api_tokens_secret_hash"),
    )
    op.create_index("ix_api_tokens_account_id", "api_tokens", ["account_id"])
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "repo_connections",
        sa.Column("repo_connection_uuid", sa.String(36), nullable=False),
        sa.Column("account_id", HEX32, nullable=False),
        sa.Column("provider_type", sa.String(32), nullable=False),
        sa.Column("provider_account_id", sa.String(256), nullable=False),
        sa.Column("provider_account_name", sa.String(256), nullable=False),
        sa.Column("repo_id", sa.String(256), nullable=False),
        sa.Column("repo_name", sa.String(256), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.Column("modified_on", TIME, nullable=False),
        sa.Column("deleted_on", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_repo_connections_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("repo_connection_uuid", name="pk_repo_connections"),
        sa.UniqueConstraint(
            "account_id",
            "provider_type",
            "repo_id",
            name="uq_repo_connections_account_id_provider_type_repo_id",
        ),
    )
    op.create_index(
        "ix_repo_connections_account_id_created_on_repo_connection_uuid",
        "repo_connections",
        ["account_id", "created_on", "repo_connection_uuid"],
    )
