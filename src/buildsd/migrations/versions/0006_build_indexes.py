"""Build indexes: the runner's per-account running count, and uuid tie-breaks in Worker lists.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index("ix_builds_account_id_external_script_id_created_on")
        batch_op.create_index(
            "ix_builds_account_id_external_script_id_created_on_build_uuid",
            ["account_id", "external_script_id", "created_on", "build_uuid"],
            unique=False,
        )
        batch_op.create_index("ix_builds_account_id_status", ["account_id", "status"], unique=False)
