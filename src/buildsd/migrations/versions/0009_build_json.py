"""builds.build_json: the build object as JSON, stored so list pages read one column a build.

Builds stored before this revision keep it null; list pages render those on the fly.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("builds", sa.Column("build_json", sa.Text(), nullable=True))
