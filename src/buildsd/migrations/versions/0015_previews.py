"""Worker Previews (issue 13): a Worker's Previews settings, one Preview per branch.

`previews_configs` points at the trigger row holding a Worker's Previews base config;
`previews` holds each branch's Preview and the trigger row with its own build settings. The
builds index on (trigger_uuid, created_on, seq) pages one Preview's builds.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TIME = sa.String(length=24)


def upgrade() -> None:
    op.create_table(
        "previews_configs",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("external_script_id", sa.String(length=32), nullable=False),
        sa.Column("trigger_uuid", sa.String(length=36), nullable=False),
        sa.Column("previews_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.Column("modified_on", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_previews_configs_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_uuid"],
            ["triggers.trigger_uuid"],
            name=op.f("fk_previews_configs_trigger_uuid_triggers"),
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "external_script_id", name=op.f("pk_previews_configs")
        ),
    )
    op.create_table(
        "previews",
        sa.Column("preview_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("external_script_id", sa.String(length=32), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("trigger_uuid", sa.String(length=36), nullable=False),
        sa.Column("delete_on_branch_delete", sa.Boolean(), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.Column("modified_on", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_previews_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_uuid"],
            ["triggers.trigger_uuid"],
            name=op.f("fk_previews_trigger_uuid_triggers"),
        ),
        sa.PrimaryKeyConstraint("preview_id", name=op.f("pk_previews")),
        sa.UniqueConstraint(
            "account_id",
            "external_script_id",
            "branch",
            name=op.f("uq_previews_account_id_external_script_id_branch"),
        ),
    )
    op.create_index(
        op.f("ix_previews_account_id_external_script_id_created_on_preview_id"),
        "previews",
        ["account_id", "external_script_id", "created_on", "preview_id"],
        unique=False,
    )
    op.create_index(op.f("ix_previews_trigger_uuid"), "previews", ["trigger_uuid"], unique=False)
    op.create_index(
        op.f("ix_builds_trigger_uuid_created_on_seq"),
        "builds",
        ["trigger_uuid", "created_on", "seq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_builds_trigger_uuid_created_on_seq"), table_name="builds")
    op.drop_index(op.f("ix_previews_trigger_uuid"), table_name="previews")
    op.drop_index(
        op.f("ix_previews_account_id_external_script_id_created_on_preview_id"),
        table_name="previews",
    )
    op.drop_table("previews")
    op.drop_table("previews_configs")
