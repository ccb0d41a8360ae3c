"""SQLAlchemy Core table definitions: the schema Alembic migrates, on SQLite and PostgreSQL alike.

Times are text in the wire format (clock.now), ids are text, lists and policies are JSON text:
the same values go in and come out on both databases, with no conversion on the request path.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from buildsd.conditions import HOOK_BUILT, QUEUED, RUNNING, UNFINISHED

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TIME = String(24)  # 2026-01-02T03:04:05.678Z
HEX32 = String(32)
UUID = String(36)

accounts = Table(
    "accounts",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_on", TIME, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("created_on", TIME, nullable=False),
)

account_members = Table(
    "account_members",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("user_id", HEX32, ForeignKey("users.id"), nullable=False),
    Column("created_on", TIME, nullable=False),
    PrimaryKeyConstraint("account_id", "user_id"),
    Index(None, "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    Column("owner_type", String(16), nullable=False),  # user | account
    Column("user_id", HEX32, ForeignKey("users.id"), nullable=True),
    # The account the token was made for: its owner, or the one a user token is scoped to.
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("policies", Text, nullable=False),  # JSON list of Cloudflare policy objects
    Column("not_before", TIME, nullable=True),
    Column("expires_on", TIME, nullable=True),
    Column("issued_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    Column("revoked_on", TIME, nullable=True),
    Index(None, "account_id"),
    Index(None, "user_id"),
)

repo_connections = Table(
    "repo_connections",
    metadata,
    Column("repo_connection_uuid", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("provider_type", String(32), nullable=False),
    Column("provider_account_id", String(256), nullable=False),
    Column("provider_account_name", String(256), nullable=False),
    Column("repo_id", String(256), nullable=False),
    Column("repo_name", String(256), nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    Column("deleted_on", TIME, nullable=True),
    # D5: the upsert key; one row per repository per account, whatever the concurrency.
    UniqueConstraint("account_id", "provider_type", "repo_id"),
    # Live connections only: lists and their counts read this index alone (migration 0003).
    Index(
        "ix_repo_connections_live",
        "account_id",
        "created_on",
        "repo_connection_uuid",
        sqlite_where=text("deleted_on IS NULL"),
        postgresql_where=text("deleted_on IS NULL"),
    ),
    # A push names its repository, not an account: webhooks look up every account's connection.
    Index(None, "provider_type", "repo_id"),
)

# How many live connections each account has, so an unfiltered list page costs the same at 10
# or 10M (D10). Kept by database triggers on repo_connections (migration 0010), which see every
# insert, upsert-revive and soft delete exactly, whatever runs them and however concurrently.
account_connection_counts = Table(
    "account_connection_counts",
    metadata,
    Column("account_id", HEX32, primary_key=True),
    Column("live_count", BigInteger, nullable=False),
)

# --- the Workers Builds resources (migration 0002) --------------------------------------------

workers = Table(
    "workers",
    metadata,
    Column("tag", HEX32, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("created_on", TIME, nullable=False),
    # The Workers platform's view of the Worker (migration 0013, D24): null until a script is
    # uploaded. `script` is the script's settings as JSON (compatibility_date, handlers, ...).
    Column("modified_on", TIME, nullable=True),
    Column("etag", String(64), nullable=True),
    Column("script", Text, nullable=True),
    # The latest deployment's (leading) version: what Cloudflare calls the script's deployment_id.
    Column("deployment_id", UUID, nullable=True),
    # The script's workers.dev route and its previews (PUT /scripts/{name}/subdomain).
    Column("subdomain_enabled", Boolean, nullable=False, server_default=text("true")),
    Column("previews_enabled", Boolean, nullable=False, server_default=text("true")),
    # Deploy-hook routes name a Worker by its name (D16); every other route by its tag.
    UniqueConstraint("account_id", "name"),
    # GET /workers/scripts: a page in creation order reads this index alone (D10).
    Index(None, "account_id", "created_on", "tag"),
)

# --- the Workers platform calls around Builds (migration 0013, D24) -----------------------------

# How many Workers each account has, so the scripts list page costs the same at 10 or 10,000
# (D10). Kept by database triggers on workers (migration 0013), as account_connection_counts is.
account_worker_counts = Table(
    "account_worker_counts",
    metadata,
    Column("account_id", HEX32, primary_key=True),
    Column("worker_count", BigInteger, nullable=False),
)

worker_versions = Table(
    "worker_versions",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("tag", HEX32, ForeignKey("workers.tag"), nullable=False),
    Column("number", Integer, nullable=False),  # 1, 2, ... per Worker
    Column("created_on", TIME, nullable=False),
    Column("source", String(32), nullable=False),  # wrangler | api
    Column("author_email", String(320), nullable=False),
    Column("etag", String(64), nullable=False),
    Column("metadata", Text, nullable=False),  # the upload's metadata part, as JSON
    Column("annotations", Text, nullable=False),  # JSON object: workers/message, workers/tag
    UniqueConstraint("tag", "number"),
)

# A version's files (its modules, source maps): the upload's parts other than metadata.
worker_version_parts = Table(
    "worker_version_parts",
    metadata,
    Column("version_id", UUID, ForeignKey("worker_versions.id"), nullable=False),
    Column("name", String(512), nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("content", LargeBinary, nullable=False),
    PrimaryKeyConstraint("version_id", "name"),
)

worker_deployments = Table(
    "worker_deployments",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("tag", HEX32, ForeignKey("workers.tag"), nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("source", String(32), nullable=False),
    Column("strategy", String(32), nullable=False),  # percentage
    Column("author_email", String(320), nullable=False),
    Column("versions", Text, nullable=False),  # JSON list of {version_id, percentage}
    Column("annotations", Text, nullable=False),  # JSON object
    # Insertion order among rows of one millisecond: clock.next_seq() (migration 0018).
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Index(None, "tag", "created_on", "seq"),
)

# An account's workers.dev subdomain, once PUT (until then a default is shown: services/).
workers_subdomains = Table(
    "workers_subdomains",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), primary_key=True),
    Column("subdomain", String(63), nullable=False, unique=True),
)

build_tokens = Table(
    "build_tokens",
    metadata,
    Column("build_token_uuid", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("build_token_name", String(256), nullable=False),
    Column("cloudflare_token_id", String(256), nullable=False),
    Column("owner_type", String(16), nullable=False),
    # The runner deploys with it, so it is encrypted (crypto.Cipher), never hashed (D19).
    Column("build_token_secret", Text, nullable=False),
    Column("created_on", TIME, nullable=False),
    Index(None, "account_id", "created_on", "build_token_uuid"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("trigger_uuid", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("external_script_id", HEX32, nullable=False),
    Column(
        "repo_connection_uuid",
        UUID,
        ForeignKey("repo_connections.repo_connection_uuid"),
        nullable=False,
    ),
    # No foreign key: a build token may be deleted while triggers name it (D19).
    Column("build_token_uuid", UUID, nullable=False),
    Column("trigger_name", String(256), nullable=False),
    Column("build_command", Text, nullable=False),
    Column("deploy_command", Text, nullable=False),
    Column("root_directory", Text, nullable=False),
    Column("branch_includes", Text, nullable=False),  # JSON lists of patterns
    Column("branch_excludes", Text, nullable=False),
    Column("path_includes", Text, nullable=False),
    Column("path_excludes", Text, nullable=False),
    Column("build_caching_enabled", Boolean, nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    Column("deleted_on", TIME, nullable=True),
    Index(None, "account_id", "external_script_id"),
    Index(None, "account_id", "created_on", "trigger_uuid"),
    Index(None, "repo_connection_uuid"),
)

environment_variables = Table(
    "environment_variables",
    metadata,
    Column("trigger_uuid", UUID, ForeignKey("triggers.trigger_uuid"), nullable=False),
    Column("key", String(256), nullable=False),
    # Plain text for ordinary values; crypto.Cipher text for secrets (is_secret).
    Column("value", Text, nullable=False),
    Column("is_secret", Boolean, nullable=False),
    Column("created_on", TIME, nullable=False),
    PrimaryKeyConstraint("trigger_uuid", "key"),
)

# Predicates of the builds table's partial indexes (conditions.py, where the store finds them).


def _partial(name: str, where: str, *columns: str) -> Index:
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


builds = Table(
    "builds",
    metadata,
    Column("build_uuid", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("trigger_uuid", UUID, ForeignKey("triggers.trigger_uuid"), nullable=False),
    Column("external_script_id", HEX32, nullable=False),
    Column("status", String(16), nullable=False),
    Column("build_outcome", String(16), nullable=True),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    Column("initializing_on", TIME, nullable=True),
    Column("running_on", TIME, nullable=True),
    Column("stopped_on", TIME, nullable=True),
    # build_trigger_metadata, as it was when the build was made
    Column("build_trigger_source", String(32), nullable=False),
    Column("branch", Text, nullable=False),
    Column("commit_hash", String(64), nullable=False),
    Column("commit_message", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("build_command", Text, nullable=False),
    Column("deploy_command", Text, nullable=False),
    Column("root_directory", Text, nullable=False),
    Column("build_token_uuid", UUID, nullable=False),
    Column("build_token_name", String(256), nullable=False),
    Column("repo_name", String(256), nullable=False),
    Column("provider_account_name", String(256), nullable=False),
    Column("provider_type", String(32), nullable=False),
    Column("environment_variables", Text, nullable=False),  # JSON, secrets as null
    Column("pull_request", Text, nullable=True),  # JSON object
    Column("deploy_hook_uuid", UUID, nullable=True),
    Column("deploy_hook_name", String(64), nullable=True),
    Column("preview_url", Text, nullable=True),
    Column("version_id", UUID, nullable=True),
    Column("duration_ms", BigInteger, nullable=True),  # build minutes used, set when stopped
    # The runner holding the build and until when (renewed while it runs); a lapsed lease
    # means the runner is gone and the build is stopped as terminated (migration 0003).
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_on", TIME, nullable=True),
    # The build object as JSON less its trigger (store.builds.json_select), kept by every write
    # the wire shows, so a list page reads one column a build (migration 0009; null before).
    Column("build_json", Text, nullable=True),
    # The Worker's build number, from worker_build_counts in the insert's transaction: ties of
    # created_on (one millisecond) break by it, so "newest first" is the order of creation (0014).
    Column("seq", BigInteger, nullable=True),
    # Newest-first pages of a Worker's builds, ties broken by seq without a sort (0006, 0014).
    Index(None, "account_id", "external_script_id", "created_on", "seq"),
    # The rest are partial (0008): each holds only the builds its queries look for, so a new
    # queued build writes four index entries, not eight.
    _partial("ix_builds_queued", QUEUED, "created_on", "build_uuid"),  # the runner's queue
    _partial("ix_builds_running", RUNNING, "account_id"),  # per-account limit, lapsed leases
    _partial("ix_builds_unfinished", UNFINISHED, "trigger_uuid", "status"),
    _partial("ix_builds_version_id", "version_id IS NOT NULL", "account_id", "version_id"),
    _partial("ix_builds_stopped_on", "stopped_on IS NOT NULL", "account_id", "stopped_on"),
    _partial("ix_builds_deploy_hook", HOOK_BUILT, "account_id", "created_on"),  # hook limits
    Index(None, "trigger_uuid", "created_on", "seq"),  # a Preview's builds (0015)
)

# How many builds each Worker has: list pages then cost the same at 1k or 10M builds (D10),
# where COUNT(*) would read every index entry. Kept in the transaction that inserts a build.
worker_build_counts = Table(
    "worker_build_counts",
    metadata,
    Column("account_id", HEX32, nullable=False),
    Column("external_script_id", HEX32, nullable=False),
    Column("build_count", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "external_script_id"),
)

build_log_lines = Table(
    "build_log_lines",
    metadata,
    Column("build_uuid", UUID, ForeignKey("builds.build_uuid"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),  # epoch milliseconds (D11)
    Column("line", Text, nullable=False),
    PrimaryKeyConstraint("build_uuid", "seq"),
)

# The phases of a build (clone, install, build, deploy …) for the logs' `events` (D18).
build_events = Table(
    "build_events",
    metadata,
    Column("build_uuid", UUID, ForeignKey("builds.build_uuid"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("started_on", TIME, nullable=True),
    Column("ended_on", TIME, nullable=True),
    PrimaryKeyConstraint("build_uuid", "seq"),
)

deploy_hooks = Table(
    "deploy_hooks",
    metadata,
    Column("deploy_hook_uuid", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("external_script_id", HEX32, nullable=False),
    Column("deploy_hook_name", String(64), nullable=False),
    Column("branch", Text, nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    UniqueConstraint("account_id", "external_script_id", "deploy_hook_name"),
)

# --- Worker Previews (migration 0015, docs/builds.md#worker-previews) ----------------------------

# A Worker's Previews settings: the trigger row holding the base config (it matches no branch,
# so it never builds itself) and whether pushes to other branches make Previews.
previews_configs = Table(
    "previews_configs",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), primary_key=True),
    Column("external_script_id", HEX32, primary_key=True),
    Column("trigger_uuid", UUID, ForeignKey("triggers.trigger_uuid"), nullable=False),
    Column("previews_enabled", Boolean, nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
)

# One Preview per branch of a Worker; its build settings are its own trigger row, which
# builds that branch alone (so its builds list under the Worker's builds too). Hard-deleted.
previews = Table(
    "previews",
    metadata,
    Column("preview_id", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("external_script_id", HEX32, nullable=False),
    Column("branch", Text, nullable=False),
    Column("trigger_uuid", UUID, ForeignKey("triggers.trigger_uuid"), nullable=False),
    Column("delete_on_branch_delete", Boolean, nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("modified_on", TIME, nullable=False),
    UniqueConstraint("account_id", "external_script_id", "branch"),
    Index(None, "account_id", "external_script_id", "created_on", "preview_id"),
    Index(None, "trigger_uuid"),
)

# --- push webhooks (migration 0004, docs/webhooks.md) ------------------------------------------

# Every verified delivery, stored before it is answered; matched afterwards (processed_on).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_uuid", UUID, primary_key=True),
    Column("provider", String(16), nullable=False),  # github (also Gitea, Forgejo) | gitlab
    Column("delivery_id", String(256), nullable=False),  # the provider's, or sha256 of the body
    Column("event", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # accepted | duplicate | ignored
    Column("reason", Text, nullable=False),
    Column("repo_id", String(256), nullable=False),  # "" when the event names no repository
    Column("repository", Text, nullable=False),
    Column("branch", Text, nullable=False),
    Column("commit_hash", String(64), nullable=False),
    Column("payload", Text, nullable=True),  # the raw body, kept for accepted deliveries only
    Column("received_on", TIME, nullable=False),
    Column("processed_on", TIME, nullable=True),  # null until matched
    Column("attempts", Integer, nullable=False),  # failed matching attempts
    # The account whose own secret verified it (/webhooks/{provider}/{account_id}): matched to
    # that account's connections only; "" for the global secret (migration 0012, D22).
    Column("secret_account_id", String(32), nullable=False, server_default=""),
    # The repository owner's id as the payload gives it ("" when it gives none): grants are
    # checked against it, not against what a connection claims (D21).
    Column("provider_account_id", String(256), nullable=False, server_default=""),
    # A pull request's action ("" for a push): part of what makes a delivery a replay (D22).
    Column("action", String(32), nullable=False, server_default=""),
    # Insertion order among rows of one millisecond: clock.next_seq() (migration 0018).
    Column("seq", BigInteger, nullable=False, server_default="0"),
    # Idempotency: one accepted (or ignored) delivery per id and secret; redeliveries are kept
    # beside it as `duplicate` rows, which this index leaves out.
    Index(
        "uq_webhook_deliveries_key",
        "provider",
        "secret_account_id",
        "delivery_id",
        unique=True,
        sqlite_where=text("status <> 'duplicate'"),
        postgresql_where=text("status <> 'duplicate'"),
    ),
    # Replays under a new delivery id (D22): accepted deliveries of one commit of a repository,
    # by time (0012); a sha is near unique, so the window's look-up reads a row or two.
    Index(
        "ix_webhook_deliveries_replay",
        "repo_id",
        "commit_hash",
        "received_on",
        sqlite_where=text("status = 'accepted'"),
        postgresql_where=text("status = 'accepted'"),
    ),
    Index(
        "ix_webhook_deliveries_pending",
        "received_on",
        sqlite_where=text("processed_on IS NULL"),
        postgresql_where=text("processed_on IS NULL"),
    ),
    # Pruning reads the oldest matched deliveries along it (migration 0007); a new delivery,
    # not yet matched, writes no entry.
    Index(
        "ix_webhook_deliveries_processed_on",
        "processed_on",
        sqlite_where=text("processed_on IS NOT NULL"),
        postgresql_where=text("processed_on IS NOT NULL"),
    ),
)

# A delivery as one account sees it: what happened to each of its triggers (JSON list of
# wire.WebhookDecision). Written in the transaction that matches the delivery.
webhook_matches = Table(
    "webhook_matches",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("delivery_uuid", UUID, ForeignKey("webhook_deliveries.delivery_uuid"), nullable=False),
    Column("received_on", TIME, nullable=False),
    Column("decisions", Text, nullable=False),
    # Insertion order among rows of one millisecond: its delivery's seq (migration 0018).
    Column("seq", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("account_id", "delivery_uuid"),
    Index(None, "account_id", "received_on", "seq"),
    Index(None, "delivery_uuid"),  # pruning deletes a delivery's rows of every account (0007)
)

# The builds of pull requests not yet known closed, by connection and pull request: how a
# "closed" delivery finds them without reading every build (migration 0007). The url is
# stored as its sha256 (hex): a url may be longer than an index entry can be. A row goes
# when its build gets `closed_on`.
pull_request_builds = Table(
    "pull_request_builds",
    metadata,
    Column("repo_connection_uuid", UUID, nullable=False),
    Column("pull_request_key", String(64), nullable=False),  # sha256 of pull_request_url
    Column("build_uuid", UUID, ForeignKey("builds.build_uuid"), nullable=False),
    PrimaryKeyConstraint("repo_connection_uuid", "pull_request_key", "build_uuid"),
)

# --- grants and per-account webhook secrets (migration 0012, D21, D22) ------------------------

# What Cloudflare's Git app installation is (`grant_id`): the account may connect repositories
# of this provider account, all of them or the ones listed. Added and revoked by the operator.
grants = Table(
    "grants",
    metadata,
    Column("grant_id", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("provider_type", String(32), nullable=False),
    Column("provider_account_id", String(256), nullable=False),  # the owner's id
    Column("provider_account_name", String(256), nullable=False),  # the owner's login / path
    Column("repository_selection", String(16), nullable=False),  # all | selected (GitHub's words)
    Column("repositories", Text, nullable=False),  # JSON list of {repo_id, repo_name}
    Column("created_on", TIME, nullable=False),
    Index(None, "account_id", "created_on", "grant_id"),
)

# An account's own webhook secret per provider. Encrypted (crypto.Cipher), not hashed: checking
# an HMAC signature needs the secret itself.
webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("provider", String(16), nullable=False),  # github | gitlab
    Column("secret", Text, nullable=False),
    Column("created_on", TIME, nullable=False),
    PrimaryKeyConstraint("account_id", "provider"),
)

# --- audit log (migration 0005, docs/compatibility.md "Audit log") ----------------------------

# One row per write through the API, success or failure: who (user, credential, address), what
# (action, resource), when, and the outcome. Ids and names only, never a request body (bodies
# hold build-token secrets and secret variable values). "when" is Cloudflare's field name and a
# reserved word: raw SQL quotes it.
audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("when", TIME, nullable=False),
    Column("action_type", String(64), nullable=False),  # create | update | delete | upsert …
    Column("action_result", Boolean, nullable=False),
    Column("actor_id", String(64), nullable=False),  # the user's id; "" for a deploy hook
    Column("actor_email", String(320), nullable=False),
    Column("actor_ip", String(64), nullable=False),
    Column("actor_type", String(16), nullable=False),  # user | Cloudflare (deploy hooks)
    Column("credential_id", String(64), nullable=True),  # token id, or user id for a key
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(256), nullable=False),  # "" when a failed create named none
    Column("operation", String(64), nullable=False),  # the route table's operationId
    Column("status", Integer, nullable=False),  # the HTTP status answered
    Column("metadata", Text, nullable=False),  # JSON object: path ids and names, error code
    # Insertion order among rows of one millisecond: clock.next_seq() (migration 0018).
    Column("seq", BigInteger, nullable=False, server_default="0"),
    # Pages are read newest (or oldest) first along these; seq breaks ties of one millisecond,
    # id those of rows from before 0018 (all seq 0).
    Index(None, "account_id", "when", "seq", "id"),
    Index(None, "account_id", "action_type", "when", "seq", "id"),
)

# Rate-limit counters shared by replicas (D15) when the database is PostgreSQL and no Redis is
# configured: one row per credential digest and window bucket, pruned once a bucket (0011).
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("credential", String(32), nullable=False),  # blake2b-128 of the credential, hex
    Column("bucket_start", BigInteger, nullable=False),  # epoch seconds, a multiple of the window
    Column("hits", Integer, nullable=False),
    PrimaryKeyConstraint("credential", "bucket_start"),
)

# --- the outbox (migration 0016, D29, docs/forges.md) ------------------------------------------

# Each account's forge token per provider type. Encrypted (crypto.Cipher), not hashed: the
# sender presents the token itself. forge says which API speaks for that provider type (a
# `github` connection may live on Gitea or Forgejo); api_url lets it be self-hosted.
forge_credentials = Table(
    "forge_credentials",
    metadata,
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("provider_type", String(32), nullable=False),
    Column("forge", String(16), nullable=False),  # github | gitlab | gitea
    Column("api_url", Text, nullable=False),
    # The credential's secret: a token, or with app_id (GitHub App, 0017) the App's private key.
    Column("token", Text, nullable=False),
    Column("created_on", TIME, nullable=False),
    Column("app_id", String(32), nullable=True),
    Column("installation_id", String(32), nullable=True),  # None: asked per repository
    PrimaryKeyConstraint("account_id", "provider_type"),
)

# One row per build state change a forge should hear of, written by the transaction that made
# the change (one INSERT … SELECT, nothing when the account has no forge credential). The
# build's facts are copied as they were then; state is pending → delivered | failed (gave up).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the order per build
    Column("account_id", HEX32, nullable=False),
    Column("build_uuid", UUID, nullable=False),
    Column("provider_type", String(32), nullable=False),
    Column("forge", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("build_outcome", String(16), nullable=True),
    Column("external_script_id", HEX32, nullable=False),
    Column("commit_hash", String(64), nullable=False),
    Column("provider_account_name", String(256), nullable=False),
    Column("repo_name", String(256), nullable=False),
    Column("pull_request", Text, nullable=True),
    Column("version_id", UUID, nullable=True),
    Column("preview_url", Text, nullable=True),
    Column("created_on", TIME, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_on", TIME, nullable=False),
    Column("lease_until", TIME, nullable=True),  # a sender holds the row until then
    Column("last_error", Text, nullable=True),
    Column("delivered_on", TIME, nullable=True),
    Column("comment_id", String(64), nullable=True),  # the PR/MR comment, updated in place
    # Build events (forge 'event'): the subscription, the event, its Standard Webhooks id
    # (kept by retries and replays), and the build as the wire showed it then.
    Column("subscription_id", HEX32, nullable=True),
    Column("event_type", String(64), nullable=True),
    Column("message_id", String(64), nullable=True),
    Column("build_json", Text, nullable=True),
    Column("check_run_id", String(32), nullable=True),  # GitHub App: the check run (0017)
    Index(
        "ix_outbox_pending",
        "next_attempt_on",
        "id",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    Index(None, "build_uuid", "id"),
    Index(None, "subscription_id", "id"),  # a subscription's delivery ledger
    Index(  # a check suite's re-run finds its builds by commit (0017)
        "ix_outbox_check_runs",
        "commit_hash",
        sqlite_where=text("check_run_id IS NOT NULL"),
        postgresql_where=text("check_run_id IS NOT NULL"),
    ),
)

# Where an account wants its build events (cf.workersBuilds.worker.build.*), signed per
# Standard Webhooks with `secret` (encrypted: signing needs it). events: a JSON list.
event_subscriptions = Table(
    "event_subscriptions",
    metadata,
    Column("id", HEX32, primary_key=True),
    Column("account_id", HEX32, ForeignKey("accounts.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_on", TIME, nullable=False),
    Index(None, "account_id", "created_on"),
)
