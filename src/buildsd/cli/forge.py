"""`buildsd forge set|show|unset`: each account's forge token, for statuses and comments (D29)."""

from __future__ import annotations

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
    prompt=True,
    hide_input=True,
    envvar="BUILDSD_FORGE_TOKEN",
    help="The token [prompted, or BUILDSD_FORGE_TOKEN]; stored encrypted, never printed",
)
@click.pass_context
def forge_set(
    ctx: click.Context, account_id: str, forge_: str, api_url: str | None, token: str
) -> None:
    """Store the account's token for FORGE, replacing an earlier one."""
    settings = settings_of(ctx)
    prepare(settings)
    provider_type = run_with_services(
        settings, lambda s: s.outbox.set_credential(account_id, forge_, token, api_url)
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
        click.echo(f"{row['provider_type']}  {row['forge']}  {row['api_url']}  {row['created_on']}")


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
