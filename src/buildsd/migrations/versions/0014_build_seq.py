"""Builds get `seq`, their Worker's build number: the tiebreaker of "newest first" and "latest".

Two builds of one Worker made in the same millisecond used to list in uuid order, which is
random. `seq` comes from the Worker's build counter, bumped in the build's own transaction (the
counter row's lock orders concurrent inserts), so it only grows. Existing builds are numbered
in their old order.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# 0008's partial indexes, copied as text: a migration must not change when tables.py does.
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
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE builds SET seq = numbered.n FROM ("
        "SELECT build_uuid, ROW_NUMBER() OVER (PARTITION BY account_id, external_script_id "
        "ORDER BY created_on, build_uuid) AS n FROM builds) AS numbered "
        "WHERE builds.build_uuid = numbered.build_uuid"
    )
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index("ix_builds_account_id_external_script_id_created_on_build_uuid")
        batch_op.create_index(
            "ix_builds_account_id_external_script_id_created_on_seq",
            ["account_id", "external_script_id", "created_on", "seq"],
            unique=False,
        )
    # Planners weigh indexes of equal cost in the order they were made and, with no statistics,
    # cannot tell that a partial index is small: made anew after the one above, the partial
    # indexes of 0008 stay the ones their queries read (test_build_indexes).
    for name, where, columns in _PARTIAL:
        op.drop_index(name, table_name="builds")
        op.create_index(
            name, "builds", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )
