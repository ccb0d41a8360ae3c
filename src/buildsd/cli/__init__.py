"""The `buildsd` command: serve, db upgrade, and the accounts/users/tokens/workers/grants/webhooks
administration.

Every administrative command prints what it creates as the last line of stdout, so a script can
capture it:

    TOKEN=$(buildsd tokens create --account $ID --permission "Workers CI Write" | tail -1)
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from buildsd import crypto, git, logs, migrations
from buildsd.api.protocol import guarded_protocol
from buildsd.app import build_services, create_app
from buildsd.cli import builds, webhooks_send
from buildsd.cli.common import prepare, run_with_services, settings_of
from buildsd.cli.emulate import emulate
from buildsd.config import Settings
from buildsd.db import sqlite_backup, sqlite_path, sqlite_restore
from buildsd.forges import sender_process
from buildsd.forges.sender import Sender
from buildsd.runner.worker import Runner
from buildsd.services import Services
from buildsd.services.identity import PERMISSION_GROUPS
from buildsd.services.webhook_secrets import PROVIDERS as WEBHOOK_PROVIDERS
from buildsd.wire import PROVIDER_TYPES, Grant

log = logging.getLogger("buildsd.serve")


async def _nothing(services: Services) -> None:
    return None


@click.group()
@click.option("--data-dir", help="Data directory [BUILDSD_DATA_DIR, default ./.buildsd]")
@click.option("--database-url", help="sqlite:///path or postgresql://… [BUILDSD_DATABASE_URL]")
@click.version_option(package_name="buildsd")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, database_url: str | None) -> None:
    """buildsd: a self-hostable, wire-compatible Cloudflare Workers Builds."""
    ctx.obj = {"data_dir": data_dir, "database_url": database_url}


@main.command()
@click.option("--host", help="Bind address [BUILDSD_HOST, 127.0.0.1]")
@click.option("--port", type=int, help="Port [BUILDSD_PORT, 8700]")
@click.option(
    "--strict/--no-strict", default=None, help="Only Cloudflare's surface [BUILDSD_STRICT]"
)
@click.option("--rate-limit", type=int, help="Requests per 300 s per credential; 0 = off")
@click.option("--max-body-bytes", type=int, help="Largest request body [1 MiB]")
@click.option("--bootstrap-token", help="Fix the first-run API token [BUILDSD_BOOTSTRAP_TOKEN]")
@click.option("--bootstrap-account-id", help="Fix the first-run account id")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--log-format", type=click.Choice(["auto", "json", "text"]), help="[BUILDSD_LOG_FORMAT, auto]"
)
@click.option("--runner-slots", type=int, help="Builds run at once in this process [2]")
@click.option("--no-runner", is_flag=True, help="Serve the API only; builds run in `worker`s")
@click.pass_context
def serve(ctx: click.Context, /, no_runner: bool, **flags: Any) -> None:
    """Apply migrations and run the API server in the foreground (SIGTERM stops it cleanly)."""
    import uvicorn

    if no_runner:
        flags["runner_slots"] = 0
    settings = settings_of(ctx, **flags)
    access_log = logs.configure(settings.log_level, settings.log_format)
    _check_port_free(settings.host, settings.port)
    prepare(settings)
    run_with_services(settings, _nothing, err=False, replica=True)  # bootstrap, on stdout
    sys.stdout.flush()
    log.info("%s", _summary(settings))
    uvicorn.run(
        create_app(settings, build_services(settings, access_log)),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with limits on headers it lacks (size, fields, time): api/protocol.py
        http=guarded_protocol(
            settings.header_timeout_seconds,
            settings.max_header_bytes,
            settings.body_timeout_seconds,
        ),
        log_level=settings.log_level,
        log_config=None,  # logs.configure has set up every logger
        access_log=False,  # the app writes its own access lines (api/metrics.py)
        timeout_graceful_shutdown=10,
    )


def _check_port_free(host: str, port: int) -> None:
    """Before the migrations, a port another process holds is named (not uvicorn's Errno 98)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # create_server sets SO_REUSEADDR, as uvicorn does: a TIME_WAIT port counts as free
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"{host}:{port} is already in use (another buildsd?): stop it, or choose "
                "another port with --port or BUILDSD_PORT"
            ) from exc
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _summary(settings: Settings) -> str:
    """One line at start-up: where the data is and what is configured."""
    database = settings.resolved_database_url
    if not settings.is_sqlite:  # no password in a log line: libpq also reads ?password=
        database = git.redact(database).split("?", 1)[0]
    webhooks = ", ".join(
        f"{name} ({'secret set' if secret else 'no global secret'})"
        for name, secret in (
            ("github/gitea", settings.github_webhook_secret),
            ("gitlab", settings.gitlab_webhook_token),
        )
    )
    templates = ", ".join(
        f"{provider} {git.redact(template)}"  # a template may carry the forge's credentials
        for provider, template in git.templates(settings).items()
        if template
    )
    return (
        f"serving http://{settings.host}:{settings.port}/client/v4; "
        f"data dir {settings.data_path.resolve()}; database {database}; "
        f"runner slots {settings.runner_slots}; webhooks: {webhooks}; clone URLs: {templates}"
    )


@main.command()
@click.option("--runner-slots", type=int, help="Builds run at once [BUILDSD_RUNNER_SLOTS, 2]")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def worker(ctx: click.Context, /, **flags: Any) -> None:
    """Run builds (and match stored webhook deliveries), no API; SIGTERM stops it."""
    settings = settings_of(ctx, **flags)
    if settings.runner_slots < 1:
        raise click.ClickException("a worker needs BUILDSD_RUNNER_SLOTS of 1 or more")
    access_log = logs.configure(settings.log_level, settings.log_format)
    prepare(settings)

    async def run_until_signalled(services: Services) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        # The webhook matcher too: what a `serve` stored and could not match (it died, or it
        # is busy) is matched here within its poll interval (docs/webhooks.md).
        await asyncio.gather(
            Runner(services, settings).run(stopping),
            services.webhooks.run(stopping),
            sender_process.sender_for(services.outbox, settings).run(stopping),  # D29
        )

    run_with_services(settings, run_until_signalled, access_log=access_log, replica=True)


@main.command(hidden=True)
def sender() -> None:
    """The outbox's sender as a child of `serve` or `worker` (forges/sender_process.py): its
    settings on stdin's first line; the end of stdin stops it. Not for running by hand."""
    settings = sender_process.read_settings()
    logs.configure(settings.log_level, settings.log_format)

    async def main() -> None:
        # No migrations, no bootstrap: the parent did them. Each claim commits as it ends: the
        # builds' process waits for SQLite's write lock while this one holds it.
        services = build_services(settings, group_commit=False)
        await services.open()
        try:
            await sender_process.run_child(Sender(services.outbox, settings))
        finally:
            await services.close()

    asyncio.run(main())


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every migration (forward only)."""
    settings = settings_of(ctx)
    prepare(settings)
    click.echo(f"schema at {migrations.head()}")


def _sqlite_file(settings: Settings, command: str) -> str:
    if not settings.is_sqlite:
        raise click.ClickException(
            f"`buildsd db {command}` handles SQLite; for PostgreSQL use pg_dump / pg_restore "
            "(docs/operations.md)"
        )
    return sqlite_path(settings.resolved_database_url)


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_context
def db_backup(ctx: click.Context, path: str) -> None:
    """Copy the SQLite database to PATH, consistently, also while a server runs."""
    settings = settings_of(ctx)
    source = _sqlite_file(settings, "backup")
    if not Path(source).exists():
        raise click.ClickException(f"no database at {source}")
    if Path(path).exists():
        raise click.ClickException(f"{path} exists; choose a new file")
    sqlite_backup(source, path)
    click.echo(path)


@db.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def db_restore(ctx: click.Context, path: str) -> None:
    """Replace the SQLite database with the backup at PATH (stop servers and workers first),
    then migrate it to this version's schema."""
    settings = settings_of(ctx)
    destination = _sqlite_file(settings, "restore")
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    try:
        sqlite_restore(path, destination)
    except (ValueError, sqlite3.DatabaseError) as exc:
        raise click.ClickException(f"cannot restore {path}: {exc}") from exc
    prepare(settings)
    click.echo(f"restored {path} into {destination}; schema at {migrations.head()}")


@main.group()
def secrets() -> None:
    """The key that encrypts stored secrets."""


@secrets.command("generate")
def secrets_generate() -> None:
    """Print a new BUILDSD_SECRET_KEY (give every replica the same one); stores nothing."""
    click.echo(crypto.encode_key(crypto.new_key()))


@secrets.command("rotate-key")
@click.pass_context
def secrets_rotate_key(ctx: click.Context) -> None:
    """Re-encrypt every stored secret with a new key, then save the key in the data dir.

    With BUILDSD_SECRET_KEY set, the new key is printed instead: set it everywhere before
    starting buildsd again.
    """
    settings = settings_of(ctx)
    prepare(settings)
    old_key = crypto.load_key(settings.secret_key, settings.data_path)
    new_key = crypto.new_key()
    count = run_with_services(
        settings,
        lambda s: s.secret_keys.rotate(crypto.Cipher(old_key), crypto.Cipher(new_key)),
    )
    if settings.secret_key:
        click.echo(f"re-encrypted {count} secret(s); set BUILDSD_SECRET_KEY to:", err=True)
        click.echo(crypto.encode_key(new_key))
        return
    try:
        saved = crypto.save_key(settings.data_path, new_key)
    except OSError as exc:  # the database already uses the new key: it must not be lost
        click.echo(
            f"could not save the key ({exc}); keep it: {crypto.encode_key(new_key)}", err=True
        )
        raise SystemExit(1) from exc
    click.echo(f"re-encrypted {count} secret(s); new key in {saved}")


@main.group()
def accounts() -> None:
    """Accounts."""


@accounts.command("create")
@click.option("--name", required=True)
@click.pass_context
def accounts_create(ctx: click.Context, name: str) -> None:
    """Create an account; prints its 32-hex id."""
    settings = settings_of(ctx)
    prepare(settings)
    click.echo(run_with_services(settings, lambda s: s.admin.create_account(name)))


@accounts.command("list")
@click.pass_context
def accounts_list(ctx: click.Context) -> None:
    """List accounts: id and name."""
    settings = settings_of(ctx)
    prepare(settings)
    for account in run_with_services(settings, lambda s: s.admin.list_accounts()):
        click.echo(f"{account.id}  {account.name}")


@main.group()
def users() -> None:
    """Users (Global API Keys)."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--account", "account_id", required=True, help="Account the user is a member of")
@click.pass_context
def users_create(ctx: click.Context, email: str, account_id: str) -> None:
    """Create a user who is a member of the account; prints the Global API Key."""
    settings = settings_of(ctx)
    prepare(settings)
    click.echo(run_with_services(settings, lambda s: s.admin.create_user(email, account_id)))


@main.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option("--account", "account_id", required=True)
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    required=True,
    type=click.Choice(sorted(PERMISSION_GROUPS)),
)
@click.option(
    "--owner",
    "owner_type",
    type=click.Choice(["user", "account"]),
    default="user",
    show_default=True,
)
@click.option("--user", "user_email", help="Owner's email (default: the administrator)")
@click.option("--name")
@click.option("--expires-on", help="ISO 8601 time after which the token is expired")
@click.pass_context
def tokens_create(ctx: click.Context, /, **options: Any) -> None:
    """Create an API token; prints the token (shown only this once)."""
    settings = settings_of(ctx)
    prepare(settings)
    options["permissions"] = list(options["permissions"])
    created = run_with_services(settings, lambda s: s.admin.create_token(**options))
    click.echo(f"token id {created.id}", err=True)
    click.echo(created.value)


@tokens.command("list")
@click.option("--account", "account_id", required=True)
@click.pass_context
def tokens_list(ctx: click.Context, account_id: str) -> None:
    """List the account's tokens (never their secrets)."""
    settings = settings_of(ctx)
    prepare(settings)
    for token in run_with_services(settings, lambda s: s.admin.list_tokens(account_id)):
        expiry = token.expires_on or "never"
        click.echo(f"{token.id}  {token.owner_type:<7}  {token.status:<8}  {expiry}  {token.name}")


@tokens.command("revoke")
@click.argument("token_id")
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by id; it is refused from then on."""
    settings = settings_of(ctx)
    prepare(settings)
    run_with_services(settings, lambda s: s.admin.revoke_token(token_id))
    click.echo(f"revoked {token_id}")


@main.group()
def workers() -> None:
    """Workers: a name (deploy-hook paths) and a 32-hex tag (every other path)."""


@workers.command("create")
@click.argument("name")
@click.option("--account", "account_id", required=True)
@click.pass_context
def workers_create(ctx: click.Context, name: str, account_id: str) -> None:
    """Create a Worker named NAME in the account; prints its new tag."""
    settings = settings_of(ctx)
    prepare(settings)
    click.echo(run_with_services(settings, lambda s: s.workers.create(account_id, name)))


@workers.command("list")
@click.option("--account", "account_id", required=True)
@click.pass_context
def workers_list(ctx: click.Context, account_id: str) -> None:
    """List the account's Workers: tag and name."""
    settings = settings_of(ctx)
    prepare(settings)
    for row in run_with_services(settings, lambda s: s.workers.list_(account_id)):
        click.echo(f"{row['tag']}  {row['name']}")


@main.group()
def grants() -> None:
    """Grants (D21): whose repositories an account may connect, as Cloudflare's Git app
    installation decides. Needed once the database has more than one account."""


def _repository(text: str) -> tuple[str, str]:
    repo_id, _, name = text.partition(":")
    if not repo_id or not name:
        raise click.BadParameter(f"{text!r}: give ID:NAME, e.g. 562843111:my-worker")
    return repo_id, name


def _describe(account_id: str, grant: Grant) -> str:
    repos = ", ".join(f"{r.repo_id}:{r.repo_name}" for r in grant.repositories) or "all"
    return (
        f"{grant.grant_id}  {account_id}  {grant.provider_type}  {grant.provider_account_id}  "
        f"{grant.provider_account_name}  {repos}"
    )


@grants.command("add")
@click.option("--account", "account_id", required=True)
@click.option("--provider", "provider_type", required=True, type=click.Choice(PROVIDER_TYPES))
@click.option("--owner-id", required=True, help="The provider account's id (user, org, group)")
@click.option("--owner", "owner_name", required=True, help="Its login or namespace path")
@click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="ID:NAME",
    help="Only this repository (repeatable); without any, all of the owner's",
)
@click.pass_context
def grants_add(
    ctx: click.Context,
    account_id: str,
    provider_type: str,
    owner_id: str,
    owner_name: str,
    repos: tuple[str, ...],
) -> None:
    """Let the account connect repositories of a provider account; prints the grant id."""
    settings = settings_of(ctx)
    listed = [_repository(text) for text in repos]
    prepare(settings)
    grant = run_with_services(
        settings,
        lambda s: s.grants.add(account_id, provider_type, owner_id, owner_name, listed),
    )
    click.echo(_describe(account_id, grant), err=True)
    click.echo(grant.grant_id)


@grants.command("list")
@click.option("--account", "account_id", help="Only this account's")
@click.pass_context
def grants_list(ctx: click.Context, account_id: str | None) -> None:
    """List grants: id, account, provider, owner id, owner, repositories (or "all")."""
    settings = settings_of(ctx)
    prepare(settings)
    for owner, grant in run_with_services(settings, lambda s: s.grants.every(account_id)):
        click.echo(_describe(owner, grant))


@grants.command("revoke")
@click.argument("grant_id")
@click.pass_context
def grants_revoke(ctx: click.Context, grant_id: str) -> None:
    """Revoke a grant; the account's connections no other grant covers are deleted with it."""
    settings = settings_of(ctx)
    prepare(settings)
    gone = run_with_services(settings, lambda s: s.grants.revoke(grant_id))
    if gone:
        click.echo(f"deleted {gone} connection(s) no other grant covers", err=True)
    click.echo(f"revoked {grant_id}")


@main.group()
def webhooks() -> None:
    """Push webhooks: each account's own URL and secret (docs/webhooks.md)."""


@webhooks.command("secret")
@click.option("--account", "account_id", required=True)
@click.option("--provider", required=True, type=click.Choice(WEBHOOK_PROVIDERS))
@click.pass_context
def webhooks_secret(ctx: click.Context, account_id: str, provider: str) -> None:
    """Make the account's webhook secret for /webhooks/PROVIDER/ACCOUNT (replacing any earlier
    one); prints it, only this once."""
    settings = settings_of(ctx)
    prepare(settings)
    secret = run_with_services(settings, lambda s: s.webhook_secrets.create(account_id, provider))
    click.echo(
        f"webhook URL: http://{settings.host}:{settings.port}/webhooks/{provider}/{account_id} "
        "(the secret below is shown only this once)",
        err=True,
    )
    click.echo(secret)


main.add_command(builds.builds)
webhooks.add_command(webhooks_send.send)
main.add_command(emulate)
from buildsd.cli.forge import forge  # noqa: E402

main.add_command(forge)
