"""`buildsd forge set|show|unset`: each account's forge token (or GitHub App), for statuses,
check runs and comments (D29)."""

from __future__ import annotations

from typing import TextIO

import click

from buildsd.cli.common import prepare, run_with_services, settings_of
from buildsd.services.outbox import FORGES


@click.group()
def forge() -> None:
    """Build statuses and PR/MR comments on GitHub, GitLab, Gitea (docs/forges.md)."""


@forge.command("set")
@click.option("--account", "account_id", required=True)
@click.option("--forge", "forge_", required=True, type=click.Choice(FORGES))
@click.option("--api-url", help="API base URL (GitHub Enterprise, self-hosted GitLab, Gitea)")
@click.option(
    "--token",
    envvar="BUILDSD_FORGE_TOKEN",
    help="The token [prompted, or BUILDSD_FORGE_TOKEN]; stored encrypted, never printed",
)
@click.option("--app-id", help="GitHub only: a GitHub App's ID, for check runs (docs/forges.md)")
@click.option(
    "--private-key-file",
    type=click.File("r"),
    help="With --app-id: the App's private key (PEM); stored encrypted, never printed",
)
@click.option(
    "--installation-id", help="With --app-id: the App's installation [default: per repository]"
)
@click.pass_context
def forge_set(
    ctx: click.Context,
    account_id: str,
    forge_: str,
    api_url: str | None,
    token: str | None,
    app_id: str | None,
    private_key_file: TextIO | None,
    installation_id: str | None,
) -> None:
    """Store the account's token (or GitHub App) for FORGE, replacing an earlier one."""
    settings = settings_of(ctx)
    if app_id is not None or private_key_file is not None or installation_id is not None:
        if forge_ != "github":
            raise click.UsageError("--app-id is for --forge github (check runs)")
        if app_id is None or private_key_file is None:
            raise click.UsageError("a GitHub App needs both --app-id and --private-key-file")
        key = private_key_file.read()
        prepare(settings)
        run_with_services(
            settings, lambda s: s.outbox.set_app(account_id, app_id, key, installation_id, api_url)
        )
        click.echo(f"github check runs by App {app_id} for the account's github connections")
        return
    if token is None:
        token = click.prompt("Token", hide_input=True)
    prepare(settings)
    provider_type = run_with_services(
        settings, lambda s: s.outbox.set_credential(account_id, forge_, str(token), api_url)
    )
    click.echo(f"{forge_} updates for the account's {provider_type} connections")


@forge.command("show")
@click.option("--account", "account_id", required=True)
@click.pass_context
def forge_show(ctx: click.Context, account_id: str) -> None:
    """The account's forges: provider type, forge, API URL (never the token)."""
    settings = settings_of(ctx)
    prepare(settings)
    for row in run_with_services(settings, lambda s: s.outbox.credentials(account_id)):
        app = f"  app {row['app_id']}" if row["app_id"] else ""
        if row["installation_id"]:
            app += f" installation {row['installation_id']}"
        click.echo(
            f"{row['provider_type']}  {row['forge']}  {row['api_url']}  {row['created_on']}{app}"
        )


@forge.command("unset")
@click.option("--account", "account_id", required=True)
@click.option("--forge", "forge_", required=True, type=click.Choice(FORGES))
@click.pass_context
def forge_unset(ctx: click.Context, account_id: str, forge_: str) -> None:
    """Forget the account's token for FORGE; its pending updates are then given up."""
    settings = settings_of(ctx)
    prepare(settings)
    if not run_with_services(settings, lambda s: s.outbox.unset_credential(account_id, forge_)):
        raise click.ClickException(f"the account has no {forge_} token")
    click.echo("removed")
