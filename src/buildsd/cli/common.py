"""What every `buildsd` command does first: settings, key, schema, services, first-run credentials.

Commands of their own rooms live beside this module (one module a group) and use these helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from buildsd import crypto, migrations
from buildsd.app import build_services
from buildsd.config import Settings, load_settings
from buildsd.errors import AdminError, BuildsError, ConfigError
from buildsd.logs import AccessLog
from buildsd.services import Services
from buildsd.services.administration import Bootstrap

T = TypeVar("T")


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return load_settings(**ctx.obj, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def prepare(settings: Settings) -> None:
    """What every command needs first: the secret key and an up-to-date schema."""
    try:
        crypto.load_key(settings.secret_key, settings.data_path)
        if settings.is_sqlite:
            settings.data_path.mkdir(parents=True, exist_ok=True)
        migrations.upgrade(settings.resolved_database_url)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def run_with_services(
    settings: Settings,
    work: Callable[[Services], Awaitable[T]],
    *,
    err: bool = True,
    access_log: AccessLog | None = None,
    replica: bool = False,
) -> T:
    """Open the services, bootstrap if the database is new (told on stderr), do the work.
    `access_log`: where build states go (logs.configure's), for a command that runs builds.
    `replica`: a long-running process (serve, worker), which also says so when another process's
    first run made the credentials moments ago; an admin command does not."""

    async def main() -> T:
        services = build_services(settings, access_log)
        await services.open()
        try:
            made = await services.admin.bootstrap()
            if made is not None and (replica or not made.made_elsewhere):
                announce(made, err=err)
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(main())
    except (BuildsError, ConfigError, AdminError) as exc:
        chain = "; ".join(cause.message for cause in getattr(exc, "chain", ()))
        raise click.ClickException(f"{exc}{': ' + chain if chain else ''}") from exc


def announce(made: Bootstrap, *, err: bool = False) -> None:
    if made.made_elsewhere:
        click.echo(
            f"buildsd: first run by another process: account id {made.account_id}; its "
            "credentials were shown there, once (`buildsd tokens create` makes another token)",
            err=err,
        )
        return
    lines = ["buildsd: first run, created (secrets are shown only this once):"]
    lines.append(f"  account id     {made.account_id}")
    if made.email:
        lines.append(f"  admin email    {made.email}")
    if made.api_key:
        lines.append(f"  admin API key  {made.api_key}")
    if made.token:
        lines.append(f"  API token      {made.token}   (Workers CI and Scripts Write there)")
    elif made.token_from_settings:
        lines.append("  API token      the value of BUILDSD_BOOTSTRAP_TOKEN (CI and Scripts Write)")
    click.echo("\n".join(lines), err=err)
