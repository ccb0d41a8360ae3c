"""Push webhooks: stored deliveries, what each account's triggers made of them, repo lookup.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_uuid", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("delivery_id", sa.String(length=256), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("repo_id", sa.String(length=256), nullable=False),
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("commit_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("received_on", sa.String(length=24), nullable=False),
        sa.Column("processed_on", sa.String(length=24), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_uuid", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_pending",
            ["received_on"],
            unique=False,
            sqlite_where=sa.text("processed_on IS NULL"),
            postgresql_where=sa.text("processed_on IS NULL"),
        )
        batch_op.create_index(
            "uq_webhook_deliveries_key",
            ["provider", "delivery_id"],
            unique=True,
            sqlite_where=sa.text("status <> 'duplicate'"),
            postgresql_where=sa.text("status <> 'duplicate'"),
        )

    op.create_table(
        "webhook_matches",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("delivery_uuid", sa.String(length=36), nullable=False),
        sa.Column("received_on", sa.String(length=24), nullable=False),
        sa.Column("decisions", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_webhook_matches_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["delivery_uuid"],
            ["webhook_deliveries.delivery_uuid"],
            name=op.f("fk_webhook_matches_delivery_uuid_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("account_id", "delivery_uuid", name=op.f("pk_webhook_matches")),
    )
    with op.batch_alter_table("webhook_matches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_matches_account_id_received_on_delivery_uuid"),
            ["account_id", "received_on", "delivery_uuid"],
            unique=False,
        )

    with op.batch_alter_table("repo_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repo_connections_provider_type_repo_id"),
            ["provider_type", "repo_id"],
            unique=False,
        )
