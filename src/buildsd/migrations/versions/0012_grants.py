"""Grants, per-account webhook secrets, replay dedupe (D21, D22).

`webhook_deliveries` learns which account's secret verified a delivery ("" for the global
one), the repository owner's id and a pull request's action. Its idempotency key becomes
(provider, secret_account_id, delivery_id), so two accounts' hooks on one repository never
shadow each other; a partial index finds accepted deliveries of one commit for the replay
window. Existing deliveries came through the global secret: "" is right for them.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("provider_type", sa.String(length=32), nullable=False),
        sa.Column("provider_account_id", sa.String(length=256), nullable=False),
        sa.Column("provider_account_name", sa.String(length=256), nullable=False),
        sa.Column("repository_selection", sa.String(length=16), nullable=False),
        sa.Column("repositories", sa.Text(), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_grants_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_grants")),
    )
    op.create_index(
        op.f("ix_grants_account_id_created_on_grant_id"),
        "grants",
        ["account_id", "created_on", "grant_id"],
        unique=False,
    )
    op.create_table(
        "webhook_secrets",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_webhook_secrets_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "provider", name=op.f("pk_webhook_secrets")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("secret_account_id", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "provider_account_id", sa.String(length=256), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("action", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.drop_index("uq_webhook_deliveries_key")
        batch_op.create_index(
            "uq_webhook_deliveries_key",
            ["provider", "secret_account_id", "delivery_id"],
            unique=True,
            sqlite_where=sa.text("status <> 'duplicate'"),
            postgresql_where=sa.text("status <> 'duplicate'"),
        )
        batch_op.create_index(
            "ix_webhook_deliveries_replay",
            ["repo_id", "commit_hash", "received_on"],
            unique=False,
            sqlite_where=sa.text("status = 'accepted'"),
            postgresql_where=sa.text("status = 'accepted'"),
        )
