"""Settings: one frozen Struct, built once from BUILDSD_* variables and CLI flags, passed down."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from buildsd.errors import ConfigError

ENV_PREFIX = "BUILDSD_"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of buildsd; the field name upper-cased behind BUILDSD_ is its variable."""

    host: str = "127.0.0.1"
    port: int = 8700
    data_dir: str = ".buildsd"
    # Empty means the embedded default: a SQLite file inside data_dir.
    database_url: str = ""
    strict: bool = False
    bootstrap_token: str | None = None
    bootstrap_account_id: str | None = None
    # Requests per credential per 300 s (Cloudflare's global limit); 0 turns limiting off.
    rate_limit: int = 1200
    # redis://host:port/db: rate-limit counters shared by every replica (D15); empty: on
    # PostgreSQL the replicas share them in the database, on SQLite the one process counts.
    redis_url: str = ""
    max_body_bytes: int = 1024 * 1024
    # A Worker upload (PUT /workers/scripts/{name}, POST .../versions): Cloudflare's size limit
    # for a paid plan's Worker. Larger gets 413 10027.
    max_script_bytes: int = 10 * 1024 * 1024
    # A request's line and headers: larger gets 431; not complete within the timeout (counted
    # from the connection or the request's first byte) closes the connection (api/protocol.py).
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 10.0
    # A request's body must arrive within this of its headers, else 408 and the connection is
    # closed (a body sent a byte a second held its connection forever) (api/protocol.py).
    body_timeout_seconds: float = 30.0
    secret_key: str | None = None
    # SQLite durability: "normal" survives any process crash (the WAL is in the OS cache);
    # "full" also survives power loss at ~10x the cost of a commit.
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    # How long a statement waits for SQLite's write lock while another process (`worker`, the
    # CLI, a backup) holds it, without blocking the event loop; then 503 with Retry-After.
    sqlite_lock_timeout_seconds: float = 5.0
    # Connections a process keeps to PostgreSQL.
    database_pool_size: int = 10
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json: one object per line (access lines carry request_id, account, operation, status,
    # duration_ms); text: for a person; auto: text on a terminal, JSON otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    # Build minutes an account may use per calendar month (UTC); 0 = unlimited.
    build_minutes_limit: int = 0
    # Builds this process runs at once (0 = none); builds one account may run at once.
    runner_slots: int = 2
    max_concurrent_builds_per_account: int = 6
    # A runner renews its lease on a build every third of this, and at least every second (that
    # renewal is also how it learns of a cancel); a lapsed lease → terminated.
    lease_seconds: int = 30
    # The outbox (D29, docs/forges.md): a failed forge update is retried after
    # backoff × 2^(attempt−1) seconds, jittered down to half, at most the cap, and given up
    # (recorded as failed) after max_attempts; each request waits at most forge_timeout.
    outbox_max_attempts: int = 10
    outbox_backoff_seconds: float = 2.0
    outbox_backoff_cap_seconds: float = 300.0
    outbox_poll_seconds: float = 1.0
    forge_timeout_seconds: float = 10.0
    # Settled outbox rows (delivered, given up) older than this are deleted by the sender, in
    # small batches; 0 = kept forever.
    outbox_retention_days: int = 30
    # Where `serve` and `worker` run the sender: "process", a child process of their own, so a
    # forge's answers never take the event loop builds finish on (forges/sender_process.py);
    # "inline", a task on that loop; "auto", a process unless the control API is on (its
    # virtual clock, D26, moves only its own process).
    sender: Literal["auto", "process", "inline"] = "auto"
    # Hosts an event subscription may send to, comma-separated (exact names, or ".example.com"
    # for a domain's subdomains); empty = any. An operator of a shared server limits where
    # tenants' build events can be sent (docs/events.md).
    event_url_allow_hosts: str = ""
    build_timeout_seconds: int = 1200
    # After a cancel or timeout: SIGTERM to the build's process group, SIGKILL this much later.
    cancel_grace_seconds: int = 10
    # Clone URL per provider_type; fields {provider_account_name}, {provider_account_id},
    # {repo_name}, {repo_id}. file:// works. An empty template means "cannot clone".
    git_url_github: str = "https://github.com/{provider_account_name}/{repo_name}.git"
    git_url_gitlab: str = "https://gitlab.com/{provider_account_name}/{repo_name}.git"
    git_url_gitlab_internal: str = ""
    git_url_origin: str = ""
    git_timeout_seconds: int = 300
    # Package-manager caches kept per trigger (build_caching_enabled); purged past this size.
    build_cache_max_bytes: int = 10 * 1024**3
    # The build sandbox (D20, docs/builds.md): "auto" uses bubblewrap when it works; "bwrap"
    # requires it (builds fail without it); "off" runs commands as the server's user, beside its
    # files, and is announced at start-up and in /readyz.
    sandbox: Literal["auto", "bwrap", "off"] = "auto"
    bwrap_path: str = "bwrap"
    # The uid (and gid) builds run as when buildsd runs as root; ignored otherwise (a build then
    # runs as the server's own uid, inside its own user namespace).
    build_uid: int = 65534
    # "host": builds share the machine's network; "none": build commands get only a loopback
    # of their own (clones keep the network: they must reach the forge).
    build_network: Literal["host", "none"] = "host"
    # Per-process rlimits of every build command and clone (docs/builds.md says what each is).
    build_memory_bytes: int = 8 * 1024**3  # RLIMIT_DATA: Cloudflare's 8 GB
    build_processes: int = 4096  # RLIMIT_NPROC: counted per uid, all builds together
    build_open_files: int = 16384  # RLIMIT_NOFILE
    build_file_bytes: int = 20 * 1024**3  # RLIMIT_FSIZE: Cloudflare's 20 GB disk, per file
    # Extra directories (":"-separated) bound read-only into the sandbox, e.g. a Node install.
    build_read_only_paths: str = ""
    # Where a build's `wrangler deploy` goes (D25): "cloudflare" leaves wrangler alone; "self"
    # gives the build CLOUDFLARE_API_BASE_URL of this buildsd (deploy_api_url, or else
    # http://host:port/client/v4 with a wildcard host read as 127.0.0.1).
    deploy_target: Literal["cloudflare", "self"] = "cloudflare"
    deploy_api_url: str = ""
    # Push webhooks (docs/webhooks.md): unset refuses every delivery from that provider (503).
    github_webhook_secret: str | None = None
    gitlab_webhook_token: str | None = None
    # A push that queues a build cancels that trigger's queued builds of the same branch.
    cancel_superseded: bool = False
    # Worker Previews per Worker; a new one past it deletes the least recently deployed.
    previews_max_per_worker: int = 100
    # Matched deliveries older than this are deleted by the matcher; 0 keeps them forever.
    webhook_delivery_retention_days: int = 30
    # A delivery with the repository, branch, head commit and event of one accepted within this
    # many seconds is a replay, whatever its delivery id: answered, builds nothing (D22); 0 = off.
    webhook_replay_window_seconds: int = 600
    # Who may connect which repositories (D21): "auto" grants everything while the database
    # has one account and only `buildsd grants` once it has more; "all" grants everything
    # whatever the accounts (emulator and CI use; never for tenants who must not see each other).
    grants: Literal["auto", "all"] = "auto"
    # Emulator (docs/testing.md): "simulate" runs no git and no commands (D27); the control API
    # under /_buildsd/ (D26) is on in `buildsd emulate`, and in `serve` only when set here.
    runner: Literal["real", "simulate"] = "real"
    control_api: bool = False
    seed_file: str = ""  # `buildsd emulate`: load this seed document at start-up

    @property
    def sender_inline(self) -> bool:
        return self.sender == "inline" or (self.sender == "auto" and self.control_api)

    @property
    def data_path(self) -> Path:
        # Absolute: build commands and git run in other working directories.
        return Path(self.data_dir).resolve()

    @property
    def event_hosts(self) -> list[str]:
        return [h.strip().lower() for h in self.event_url_allow_hosts.split(",") if h.strip()]

    @property
    def read_only_paths(self) -> list[str]:
        return [path for path in self.build_read_only_paths.split(":") if path]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_path / 'buildsd.sqlite3').resolve()}"

    @property
    def self_api_url(self) -> str:
        """The v4 base URL a build reaches this buildsd at (BUILDSD_DEPLOY_TARGET=self)."""
        if self.deploy_api_url:
            return self.deploy_api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/client/v4"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite:")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(name: str, raw: str, kind: Any) -> Any:
    if kind is bool or kind == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: expected true or false, got {raw!r}")
    return raw


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then explicit overrides (CLI flags); None means unset."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        raw = env.get(ENV_PREFIX + field.name.upper())
        if raw == "" and field.default is None:
            continue  # an empty optional variable means "not set"
        if raw is not None:
            values[field.name] = _parse(field.name, raw, field.type)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    _check(settings)
    return settings


_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{20,256}$")


def _check(settings: Settings) -> None:
    if settings.rate_limit < 0:
        raise ConfigError("BUILDSD_RATE_LIMIT must be 0 (off) or a positive number")
    for name in (
        "build_minutes_limit",
        "runner_slots",
        "max_concurrent_builds_per_account",
        "cancel_grace_seconds",
        "build_cache_max_bytes",
        "webhook_delivery_retention_days",
        "webhook_replay_window_seconds",
        "outbox_retention_days",
    ):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be 0 or more")
    for name in (
        "lease_seconds",
        "outbox_max_attempts",
        "build_timeout_seconds",
        "git_timeout_seconds",
        "build_memory_bytes",
        "build_processes",
        "build_open_files",
        "build_file_bytes",
        "previews_max_per_worker",
    ):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
    if settings.build_uid < 1:
        raise ConfigError("BUILDSD_BUILD_UID must be an unprivileged uid (1 or more)")
    if any(not p.startswith("/") for p in settings.read_only_paths):
        raise ConfigError("BUILDSD_BUILD_READ_ONLY_PATHS: each path must be absolute")
    if settings.max_body_bytes < 1024:
        raise ConfigError("BUILDSD_MAX_BODY_BYTES must be at least 1024")
    if settings.max_script_bytes < 1024:
        raise ConfigError("BUILDSD_MAX_SCRIPT_BYTES must be at least 1024")
    if settings.max_header_bytes < 1024:
        raise ConfigError("BUILDSD_MAX_HEADER_BYTES must be at least 1024")
    for name in (
        "header_timeout_seconds",
        "body_timeout_seconds",
        "outbox_backoff_seconds",
        "outbox_backoff_cap_seconds",
        "outbox_poll_seconds",
        "forge_timeout_seconds",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be more than 0")
    if settings.sender == "process" and settings.control_api:
        raise ConfigError(
            "BUILDSD_SENDER=process cannot go with the control API: its virtual clock moves "
            "only its own process (use auto or inline)"
        )
    if settings.sqlite_lock_timeout_seconds < 0:
        raise ConfigError("BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS must be 0 or more")
    # Checked here, before anything starts (migrations included), not at the first run.
    if settings.bootstrap_account_id is not None and not _HEX32.match(
        settings.bootstrap_account_id
    ):
        raise ConfigError("BUILDSD_BOOTSTRAP_ACCOUNT_ID must be 32 lowercase hex characters")
    if settings.bootstrap_token is not None and not _TOKEN_SHAPE.match(settings.bootstrap_token):
        raise ConfigError("BUILDSD_BOOTSTRAP_TOKEN must be 20 to 256 characters of A-Z a-z 0-9 _ -")
    url = settings.resolved_database_url
    if not url.startswith(("sqlite:", "postgresql:", "postgres:")):
        raise ConfigError(
            "BUILDSD_DATABASE_URL must start with sqlite:/// or postgresql:// "
            f"(got {url.split(':', 1)[0]!r})"
        )
