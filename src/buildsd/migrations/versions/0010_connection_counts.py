"""account_connection_counts: live connections per account, kept by triggers on repo_connections.

An unfiltered connections list read its total with COUNT(*) over the account's live index
entries (1.7 ms at 10k connections here), against D10. The triggers count a new live row, an
upsert that revives a deleted one and a soft delete; they run inside the statement, so the
count is exact whatever the concurrency (on PostgreSQL the counter row serialises writers of
one account's connections).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BUMP = (
    "INSERT INTO account_connection_counts (account_id, live_count) VALUES ({account}, {delta}) "
    "ON CONFLICT (account_id) DO UPDATE "
    "SET live_count = account_connection_counts.live_count + excluded.live_count"
)
_SQLITE = [
    "CREATE TRIGGER repo_connections_count_insert AFTER INSERT ON repo_connections "
    "WHEN NEW.deleted_on IS NULL BEGIN "
    + _BUMP.format(account="NEW.account_id", delta="1")
    + "; END",
    "CREATE TRIGGER repo_connections_count_update AFTER UPDATE OF deleted_on ON repo_connections "
    "WHEN (OLD.deleted_on IS NULL) <> (NEW.deleted_on IS NULL) BEGIN "
    + _BUMP.format(
        account="NEW.account_id", delta="CASE WHEN NEW.deleted_on IS NULL THEN 1 ELSE -1 END"
    )
    + "; END",
]
_POSTGRESQL = [
    "CREATE FUNCTION repo_connections_count() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE delta integer := 0; BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    "  IF NEW.deleted_on IS NULL THEN delta := 1; END IF; "
    "ELSIF (OLD.deleted_on IS NULL) <> (NEW.deleted_on IS NULL) THEN "
    "  delta := CASE WHEN NEW.deleted_on IS NULL THEN 1 ELSE -1 END; "
    "END IF; "
    "IF delta <> 0 THEN "
    + _BUMP.format(account="NEW.account_id", delta="delta")
    + "; END IF; RETURN NULL; END $$",
    "CREATE TRIGGER repo_connections_count AFTER INSERT OR UPDATE OF deleted_on "
    "ON repo_connections FOR EACH ROW EXECUTE FUNCTION repo_connections_count()",
]


def upgrade() -> None:
    op.create_table(
        "account_connection_counts",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("live_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_connection_counts")),
    )
    op.execute(
        "INSERT INTO account_connection_counts (account_id, live_count) "
        "SELECT account_id, COUNT(*) FROM repo_connections WHERE deleted_on IS NULL "
        "GROUP BY account_id"
    )
    for statement in _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRESQL:
        op.execute(statement)
