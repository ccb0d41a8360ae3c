"""Workers Builds resources: Workers, build tokens, triggers, variables, builds, logs, hooks.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_build_counts",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("external_script_id", sa.String(length=32), nullable=False),
        sa.Column("build_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "external_script_id", name=op.f("pk_worker_build_counts")
        ),
    )
    op.create_table(
        "build_tokens",
        sa.Column("build_token_uuid", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("build_token_name", sa.String(length=256), nullable=False),
        sa.Column("cloudflare_token_id", sa.String(length=256), nullable=False),
        sa.Column("owner_type", sa.String(length=16), nullable=False),
        sa.Column("build_token_secret", sa.Text(), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_build_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("build_token_uuid", name=op.f("pk_build_tokens")),
    )
    with op.batch_alter_table("build_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_build_tokens_account_id_created_on_build_token_uuid"),
            ["account_id", "created_on", "build_token_uuid"],
            unique=False,
        )

    op.create_table(
        "deploy_hooks",
        sa.Column("deploy_hook_uuid", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("external_script_id", sa.String(length=32), nullable=False),
        sa.Column("deploy_hook_name", sa.String(length=64), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.Column("modified_on", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_deploy_hooks_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("deploy_hook_uuid", name=op.f("pk_deploy_hooks")),
        sa.UniqueConstraint(
            "account_id",
            "external_script_id",
            "deploy_hook_name",
            name=op.f("uq_deploy_hooks_account_id_external_script_id_deploy_hook_name"),
        ),
    )
    op.create_table(
        "workers",
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_workers_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_workers")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_workers_account_id_name")),
    )
    op.create_table(
        "triggers",
        sa.Column("trigger_uuid", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("external_script_id", sa.String(length=32), nullable=False),
        sa.Column("repo_connection_uuid", sa.String(length=36), nullable=False),
        sa.Column("build_token_uuid", sa.String(length=36), nullable=False),
        sa.Column("trigger_name", sa.String(length=256), nullable=False),
        sa.Column("build_command", sa.Text(), nullable=False),
        sa.Column("deploy_command", sa.Text(), nullable=False),
        sa.Column("root_directory", sa.Text(), nullable=False),
        sa.Column("branch_includes", sa.Text(), nullable=False),
        sa.Column("branch_excludes", sa.Text(), nullable=False),
        sa.Column("path_includes", sa.Text(), nullable=False),
        sa.Column("path_excludes", sa.Text(), nullable=False),
        sa.Column("build_caching_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.Column("modified_on", sa.String(length=24), nullable=False),
        sa.Column("deleted_on", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_triggers_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["repo_connection_uuid"],
            ["repo_connections.repo_connection_uuid"],
            name=op.f("fk_triggers_repo_connection_uuid_repo_connections"),
        ),
        sa.PrimaryKeyConstraint("trigger_uuid", name=op.f("pk_triggers")),
    )
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_triggers_account_id_created_on_trigger_uuid"),
            ["account_id", "created_on", "trigger_uuid"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_triggers_account_id_external_script_id"),
            ["account_id", "external_script_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_triggers_repo_connection_uuid"), ["repo_connection_uuid"], unique=False
        )

    op.create_table(
        "builds",
        sa.Column("build_uuid", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("trigger_uuid", sa.String(length=36), nullable=False),
        sa.Column("external_script_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("build_outcome", sa.String(length=16), nullable=True),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.Column("modified_on", sa.String(length=24), nullable=False),
        sa.Column("initializing_on", sa.String(length=24), nullable=True),
        sa.Column("running_on", sa.String(length=24), nullable=True),
        sa.Column("stopped_on", sa.String(length=24), nullable=True),
        sa.Column("build_trigger_source", sa.String(length=32), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("commit_hash", sa.String(length=64), nullable=False),
        sa.Column("commit_message", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("build_command", sa.Text(), nullable=False),
        sa.Column("deploy_command", sa.Text(), nullable=False),
        sa.Column("root_directory", sa.Text(), nullable=False),
        sa.Column("build_token_uuid", sa.String(length=36), nullable=False),
        sa.Column("build_token_name", sa.String(length=256), nullable=False),
        sa.Column("repo_name", sa.String(length=256), nullable=False),
        sa.Column("provider_account_name", sa.String(length=256), nullable=False),
        sa.Column("provider_type", sa.String(length=32), nullable=False),
        sa.Column("environment_variables", sa.Text(), nullable=False),
        sa.Column("pull_request", sa.Text(), nullable=True),
        sa.Column("deploy_hook_uuid", sa.String(length=36), nullable=True),
        sa.Column("deploy_hook_name", sa.String(length=64), nullable=True),
        sa.Column("preview_url", sa.Text(), nullable=True),
        sa.Column("version_id", sa.String(length=36), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_builds_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_uuid"],
            ["triggers.trigger_uuid"],
            name=op.f("fk_builds_trigger_uuid_triggers"),
        ),
        sa.PrimaryKeyConstraint("build_uuid", name=op.f("pk_builds")),
    )
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_builds_account_id_external_script_id_created_on"),
            ["account_id", "external_script_id", "created_on"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_builds_account_id_stopped_on"),
            ["account_id", "stopped_on"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_builds_account_id_version_id"),
            ["account_id", "version_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_builds_status_created_on"), ["status", "created_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_builds_trigger_uuid_status"), ["trigger_uuid", "status"], unique=False
        )

    op.create_table(
        "environment_variables",
        sa.Column("trigger_uuid", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("is_secret", sa.Boolean(), nullable=False),
        sa.Column("created_on", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_uuid"],
            ["triggers.trigger_uuid"],
            name=op.f("fk_environment_variables_trigger_uuid_triggers"),
        ),
        sa.PrimaryKeyConstraint("trigger_uuid", "key", name=op.f("pk_environment_variables")),
    )
    op.create_table(
        "build_log_lines",
        sa.Column("build_uuid", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_uuid"], ["builds.build_uuid"], name=op.f("fk_build_log_lines_build_uuid_builds")
        ),
        sa.PrimaryKeyConstraint("build_uuid", "seq", name=op.f("pk_build_log_lines")),
    )
