"""Partial build indexes: each holds only the builds its queries look for.

A queued build used to write eight index entries; now four (primary key, the Worker list, the
queue, the trigger's unfinished builds). The predicates are `tables.QUEUED` and friends,
copied here as text: a migration must not change when the tables module does.

Revision ID: 0008
Revises: 0007
"""

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_DROPPED = (
    "ix_builds_account_id_status",
    "ix_builds_trigger_uuid_status",
    "ix_builds_account_id_version_id",
    "ix_builds_account_id_stopped_on",
    "ix_builds_status_created_on",
    "ix_builds_status_lease_expires_on",
)
_PARTIAL = (
    ("ix_builds_queued", "status = 'queued'", ["created_on", "build_uuid"]),
    ("ix_builds_running", "status IN ('initializing', 'running')", ["account_id"]),
    (
        "ix_builds_unfinished",
        "status IN ('queued', 'initializing', 'running')",
        ["trigger_uuid", "status"],
    ),
    ("ix_builds_version_id", "version_id IS NOT NULL", ["account_id", "version_id"]),
    ("ix_builds_stopped_on", "stopped_on IS NOT NULL", ["account_id", "stopped_on"]),
    ("ix_builds_deploy_hook", "deploy_hook_uuid IS NOT NULL", ["account_id", "created_on"]),
)


def upgrade() -> None:
    for name in _DROPPED:
        op.drop_index(name, table_name="builds")
    for name, where, columns in _PARTIAL:
        op.create_index(
            name,
            "builds",
            columns,
            unique=False,
            sqlite_where=text(where),
            postgresql_where=text(where),
        )
