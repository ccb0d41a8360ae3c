"""The outbox (D29): forge updates written in the build's own transaction, sent later.

forge_credentials holds each account's token per provider type (encrypted, like webhook
secrets: the sender needs the token itself). outbox holds one row per build state change a forge
should hear of, with the build's facts copied at that moment, so a later delivery reports what
was true then, and its delivery state (attempts, next try, lease, the forge's answer).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TIME = sa.String(24)


def upgrade() -> None:
    op.create_table(
        "forge_credentials",
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("provider_type", sa.String(32), nullable=False),
        sa.Column("forge", sa.String(16), nullable=False),
        sa.Column("api_url", sa.Text(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_forge_credentials_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "provider_type", name="pk_forge_credentials"),
    )
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_event_subscriptions_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event_subscriptions"),
    )
    op.create_index(
        "ix_event_subscriptions_account_id_created_on",
        "event_subscriptions",
        ["account_id", "created_on"],
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("build_uuid", sa.String(36), nullable=False),
        sa.Column("provider_type", sa.String(32), nullable=False),
        sa.Column("forge", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("build_outcome", sa.String(16), nullable=True),
        sa.Column("external_script_id", sa.String(32), nullable=False),
        sa.Column("commit_hash", sa.String(64), nullable=False),
        sa.Column("provider_account_name", sa.String(256), nullable=False),
        sa.Column("repo_name", sa.String(256), nullable=False),
        sa.Column("pull_request", sa.Text(), nullable=True),
        sa.Column("version_id", sa.String(36), nullable=True),
        sa.Column("preview_url", sa.Text(), nullable=True),
        sa.Column("created_on", TIME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_on", TIME, nullable=False),
        sa.Column("lease_until", TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_on", TIME, nullable=True),
        sa.Column("comment_id", sa.String(64), nullable=True),
        sa.Column("subscription_id", sa.String(32), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("build_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_on", "id"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_outbox_build_uuid_id", "outbox", ["build_uuid", "id"])
    op.create_index("ix_outbox_subscription_id_id", "outbox", ["subscription_id", "id"])
