"""Closed pull requests and delivery pruning: the builds of open pull requests, two indexes.

`pull_request_builds` is filled with the pull-request builds that already exist and have no
`closed_on`, so a pull request closed after the upgrade marks them too (this reads the builds
table once).

Revision ID: 0007
Revises: 0006
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CHUNK = 1000


def upgrade() -> None:
    op.create_table(
        "pull_request_builds",
        sa.Column("repo_connection_uuid", sa.String(length=36), nullable=False),
        sa.Column("pull_request_key", sa.String(length=64), nullable=False),
        sa.Column("build_uuid", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_uuid"],
            ["builds.build_uuid"],
            name=op.f("fk_pull_request_builds_build_uuid_builds"),
        ),
        sa.PrimaryKeyConstraint(
            "repo_connection_uuid",
            "pull_request_key",
            "build_uuid",
            name=op.f("pk_pull_request_builds"),
        ),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        # Matched deliveries only: storing a new one writes no entry here.
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_processed_on"),
            ["processed_on"],
            unique=False,
            sqlite_where=sa.text("processed_on IS NOT NULL"),
            postgresql_where=sa.text("processed_on IS NOT NULL"),
        )
    with op.batch_alter_table("webhook_matches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_matches_delivery_uuid"), ["delivery_uuid"], unique=False
        )
    _remember_open_pull_requests()


def _remember_open_pull_requests() -> None:
    """The key is sha256(pull_request_url), as services/pull_requests.py computes it."""
    bind = op.get_bind()
    found = bind.execute(
        sa.text(
            "SELECT b.build_uuid, t.repo_connection_uuid, b.pull_request FROM builds b "
            "JOIN triggers t ON t.trigger_uuid = b.trigger_uuid "
            "WHERE b.pull_request IS NOT NULL"
        )
    ).fetchall()
    rows = []
    for build_uuid, repo_connection_uuid, text in found:
        pull_request = json.loads(text)
        url = pull_request.get("pull_request_url") or ""
        if url and "closed_on" not in pull_request:
            key = hashlib.sha256(url.encode()).hexdigest()
            rows.append({"c": repo_connection_uuid, "k": key, "b": build_uuid})
    insert = sa.text(
        "INSERT INTO pull_request_builds (repo_connection_uuid, pull_request_key, build_uuid) "
        "VALUES (:c, :k, :b)"
    )
    for start in range(0, len(rows), _CHUNK):
        bind.execute(insert, rows[start : start + _CHUNK])
