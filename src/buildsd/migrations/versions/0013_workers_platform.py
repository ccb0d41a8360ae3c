"""The Workers platform calls around Builds (D24): scripts, versions, deployments, subdomains.

The `workers` table stays THE Worker: it gains the script's columns (null until a script is
uploaded), and versions and deployments hang off its tag. account_worker_counts holds each
account's number of Workers, kept by triggers on workers (as 0010 keeps connection counts), so
the scripts list reads its total from one row: COUNT(*) over the account's index entries made
a page at 10,000 Workers cost 5.5 × the instructions of one at 10 (make bench-instructions).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TIME = sa.String(24)

_BUMP = (
    "INSERT INTO account_worker_counts (account_id, worker_count) VALUES ({account}, {delta}) "
    "ON CONFLICT (account_id) DO UPDATE "
    "SET worker_count = account_worker_counts.worker_count + excluded.worker_count"
)
# A Worker never changes account (its tag is the registering account's), so an insert and a
# delete are all the counter has to see; tests/conftest.py checks it after every test.
_SQLITE = [
    "CREATE TRIGGER workers_count_insert AFTER INSERT ON workers BEGIN "
    + _BUMP.format(account="NEW.account_id", delta="1")
    + "; END",
    "CREATE TRIGGER workers_count_delete AFTER DELETE ON workers BEGIN "
    + _BUMP.format(account="OLD.account_id", delta="-1")
    + "; END",
]
_POSTGRESQL = [
    "CREATE FUNCTION workers_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    + _BUMP.format(account="NEW.account_id", delta="1")
    + "; ELSE "
    + _BUMP.format(account="OLD.account_id", delta="-1")
    + "; END IF; RETURN NULL; END $$",
    "CREATE TRIGGER workers_count AFTER INSERT OR DELETE ON workers "
    "FOR EACH ROW EXECUTE FUNCTION workers_count()",
]


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("modified_on", TIME, nullable=True))
        batch.add_column(sa.Column("etag", sa.String(64), nullable=True))
        batch.add_column(sa.Column("script", sa.Text(), nullable=True))
        batch.add_column(sa.Column("deployment_id", sa.String(36), nullable=True))
        batch.add_column(
            sa.Column(
                "subdomain_enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")
            )
        )
        batch.add_column(
            sa.Column(
                "previews_enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")
            )
        )
    op.create_index(
        "ix_workers_account_id_created_on_tag", "workers", ["account_id", "created_on", "tag"]
    )
    op.create_table(
        "worker_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("author_email", sa.String(320), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_worker_versions_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(["tag"], ["workers.tag"], name="fk_worker_versions_tag_workers"),
        sa.PrimaryKeyConstraint("id", name="pk_worker_versions"),
        sa.UniqueConstraint("tag", "number", name="uq_worker_versions_tag_number"),
    )
    op.create_table(
        "worker_version_parts",
        sa.Column("version_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["worker_versions.id"],
            name="fk_worker_version_parts_version_id_worker_versions",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name="pk_worker_version_parts"),
    )
    op.create_table(
        "worker_deployments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(32), nullable=False),
        sa.Column("created_on", TIME, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("author_email", sa.String(320), nullable=False),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_worker_deployments_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(["tag"], ["workers.tag"], name="fk_worker_deployments_tag_workers"),
        sa.PrimaryKeyConstraint("id", name="pk_worker_deployments"),
    )
    op.create_index(
        "ix_worker_deployments_tag_created_on", "worker_deployments", ["tag", "created_on"]
    )
    op.create_table(
        "workers_subdomains",
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("subdomain", sa.String(63), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_workers_subdomains_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", name="pk_workers_subdomains"),
        sa.UniqueConstraint("subdomain", name="uq_workers_subdomains_subdomain"),
    )
    op.create_table(
        "account_worker_counts",
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("worker_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_account_worker_counts"),
    )
    op.execute(
        "INSERT INTO account_worker_counts (account_id, worker_count) "
        "SELECT account_id, COUNT(*) FROM workers GROUP BY account_id"
    )
    for statement in _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRESQL:
        op.execute(statement)
