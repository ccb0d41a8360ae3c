"""`seq` on audit entries, Worker deployments and webhook deliveries: their insertion order.

Each of these lists newest first by a millisecond timestamp, and two rows of one millisecond
used to fall back to their uuids, which are random. `seq` is `clock.next_seq()`: larger than any
number its process gave before and close to the real time in microseconds, so it orders one
process's rows as they were written and different replicas' rows by when they were written,
with no counter row for concurrent writers to queue on. Rows from before this migration get 0
and keep their old (uuid) order among themselves.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# table → [(old index, new index, its columns)]
_INDEXES = {
    "audit_logs": [
        (
            "ix_audit_logs_account_id_when_id",
            "ix_audit_logs_account_id_when_seq_id",
            ["account_id", "when", "seq", "id"],
        ),
        (
            "ix_audit_logs_account_id_action_type_when_id",
            "ix_audit_logs_account_id_action_type_when_seq_id",
            ["account_id", "action_type", "when", "seq", "id"],
        ),
    ],
    "worker_deployments": [
        (
            "ix_worker_deployments_tag_created_on",
            "ix_worker_deployments_tag_created_on_seq",
            ["tag", "created_on", "seq"],
        )
    ],
    "webhook_deliveries": [],
    "webhook_matches": [
        (
            "ix_webhook_matches_account_id_received_on_delivery_uuid",
            "ix_webhook_matches_account_id_received_on_seq",
            ["account_id", "received_on", "seq"],
        )
    ],
}


def upgrade() -> None:
    for table, indexes in _INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0")
            )
            for old, new, columns in indexes:
                batch_op.drop_index(old)
                batch_op.create_index(new, columns, unique=False)
