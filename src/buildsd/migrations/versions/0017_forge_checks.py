"""GitHub check runs (issue 16): a GitHub App as an account's GitHub credential, and each
build's check run, updated in place and found again when GitHub asks for a re-run.

forge_credentials gains app_id and installation_id: with app_id set, `token` holds the App's
private key (encrypted, as a token is), from which the sender makes installation tokens.
outbox gains check_run_id (like comment_id: what an earlier update made, edited in place) and
a partial index on commit_hash over the rows that have one, for a check suite's re-run.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("forge_credentials", sa.Column("app_id", sa.String(32), nullable=True))
    op.add_column("forge_credentials", sa.Column("installation_id", sa.String(32), nullable=True))
    op.add_column("outbox", sa.Column("check_run_id", sa.String(32), nullable=True))
    op.create_index(
        "ix_outbox_check_runs",
        "outbox",
        ["commit_hash"],
        sqlite_where=sa.text("check_run_id IS NOT NULL"),
        postgresql_where=sa.text("check_run_id IS NOT NULL"),
    )
