"""Runner leases on builds, build events, and a partial index of live connections.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "build_events",
        sa.Column("build_uuid", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("started_on", sa.String(length=24), nullable=True),
        sa.Column("ended_on", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["build_uuid"], ["builds.build_uuid"], name=op.f("fk_build_events_build_uuid_builds")
        ),
        sa.PrimaryKeyConstraint("build_uuid", "seq", name=op.f("pk_build_events")),
    )
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_on", sa.String(length=24), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_builds_status_lease_expires_on"),
            ["status", "lease_expires_on"],
            unique=False,
        )

    with op.batch_alter_table("repo_connections", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_repo_connections_account_id_created_on_repo_connection_uuid")
        )
        batch_op.create_index(
            "ix_repo_connections_live",
            ["account_id", "created_on", "repo_connection_uuid"],
            unique=False,
            sqlite_where=sa.text("deleted_on IS NULL"),
            postgresql_where=sa.text("deleted_on IS NULL"),
        )
