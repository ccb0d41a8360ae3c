"""`buildsd builds …`: list, show, follow, cancel and retry builds on a running server."""

from __future__ import annotations

import json
import time
import urllib.error
from typing import Any

import click

from buildsd.cli.remote import Remote, is_tty, state

RECONNECT_SECONDS = (0.5, 1, 2, 4, 8)


def _remote(ctx: click.Context) -> Remote:
    return ctx.ensure_object(Remote)


@click.group()
@click.option(
    "--url",
    envvar="BUILDSD_URL",
    default="http://127.0.0.1:8700",
    show_default=True,
    help="The server [BUILDSD_URL]",
)
@click.option("--token", envvar="BUILDSD_TOKEN", help="An API token [BUILDSD_TOKEN]")
@click.option(
    "--account",
    "account_id",
    envvar="BUILDSD_ACCOUNT_ID",
    help="Account id [BUILDSD_ACCOUNT_ID]; default: the token's only account",
)
@click.pass_context
def builds(ctx: click.Context, url: str, token: str | None, account_id: str | None) -> None:
    """Builds on a running buildsd: list, show, logs --follow, cancel, retry.

    Colour on a terminal; plain text when piped; --json for scripts.
    """
    if not token:
        raise click.UsageError("give --token or set BUILDSD_TOKEN")
    ctx.obj = Remote(url, token, account_id)


def _emit(value: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(value, indent=2 if is_tty() else None) if as_json else text)


def _row(build: dict[str, Any]) -> str:
    meta = build["build_trigger_metadata"]
    return "  ".join(
        [
            build["build_uuid"],
            state(build),
            meta["branch"] or "-",
            (meta["commit_hash"] or "-")[:10],
            meta["build_trigger_source"],
            build["created_on"],
        ]
    )


@builds.command("list")
@click.option("--worker", required=True, help="The Worker's name or tag")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1))
@click.option("--per-page", default=20, show_default=True, type=click.IntRange(1, 200))
@click.option("--json", "as_json", is_flag=True, help="The API's result, as JSON")
@click.pass_context
def list_(ctx: click.Context, worker: str, page: int, per_page: int, as_json: bool) -> None:
    """A Worker's builds, newest first."""
    remote = _remote(ctx)
    tag = remote.worker_tag(worker)
    found = remote.call(
        "GET", f"{remote.builds}/workers/{tag}/builds?page={page}&per_page={per_page}"
    )
    _emit(found, as_json, "\n".join(_row(b) for b in found) or "no builds")


@builds.command("show")
@click.argument("build_uuid")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, build_uuid: str, as_json: bool) -> None:
    """One build: status, outcome, branch, commit, source, times."""
    remote = _remote(ctx)
    build = remote.call("GET", f"{remote.builds}/builds/{build_uuid}")
    meta = build["build_trigger_metadata"]
    text = "\n".join(
        [
            f"build    {build['build_uuid']}",
            f"state    {state(build)}",
            f"trigger  {build['trigger']['trigger_name']}",
            f"branch   {meta['branch']}",
            f"commit   {meta['commit_hash']}  {(meta['commit_message'].splitlines() or [''])[0]}",
            f"author   {meta['author']}",
            f"source   {meta['build_trigger_source']}",
            f"created  {build['created_on']}",
            f"stopped  {build['stopped_on'] or '-'}",
        ]
    )
    _emit(build, as_json, text)


def _line(ts: int, text: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([ts, text]))
    elif is_tty():
        stamp = time.strftime("%H:%M:%S", time.gmtime(ts / 1000))
        click.echo(click.style(stamp, dim=True) + " " + text)
    else:
        click.echo(text)


@builds.command("logs")
@click.argument("build_uuid")
@click.option("--follow", "-f", is_flag=True, help="Keep printing lines until the build stops")
@click.option("--json", "as_json", is_flag=True, help="One [epoch_ms, text] array per line")
@click.pass_context
def logs(ctx: click.Context, build_uuid: str, follow: bool, as_json: bool) -> None:
    """A build's log. With --follow it streams (Server-Sent Events) and, when the connection
    drops, reconnects from the last line printed: no line is lost or printed twice."""
    remote = _remote(ctx)
    url = f"{remote.builds}/builds/{build_uuid}/logs"
    if not follow:
        cursor = ""
        while True:
            page = remote.call("GET", url + (f"?cursor={cursor}" if cursor else ""))
            for ts, text in page["lines"]:
                _line(ts, text, as_json)
            cursor = page["cursor"]
            if not page["truncated"]:
                return
    last: str | None = None
    failures = 0
    while True:
        try:
            for event, event_id, data in remote.events(url + "/stream", last):
                failures = 0
                if event == "line":
                    last = event_id
                    ts, text = json.loads(data)
                    _line(ts, text, as_json)
                elif event == "end":
                    done = json.loads(data)
                    if not as_json:
                        click.echo(f"build {build_uuid}: {state(done)}", err=True)
                    ctx.exit(0 if done.get("build_outcome") in ("success", "skipped") else 1)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise click.ClickException(f"HTTP {exc.code} for {build_uuid}") from exc
        except (OSError, urllib.error.URLError):
            pass
        # The server closed or the network dropped: resume after the last line printed.
        if failures >= len(RECONNECT_SECONDS):
            raise click.ClickException("the log stream keeps dropping; giving up")
        if is_tty():
            click.echo(click.style("… reconnecting", dim=True), err=True)
        time.sleep(RECONNECT_SECONDS[failures])
        failures += 1


@builds.command("cancel")
@click.argument("build_uuid")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cancel(ctx: click.Context, build_uuid: str, as_json: bool) -> None:
    """Cancel a queued or running build (a stopped one stays as it is)."""
    remote = _remote(ctx)
    done = remote.call("PUT", f"{remote.builds}/builds/{build_uuid}/cancel")
    _emit(done, as_json, f"{done['build_uuid']}  {state(done)}")


@builds.command("retry")
@click.argument("build_uuid")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def retry(ctx: click.Context, build_uuid: str, as_json: bool) -> None:
    """Build the same branch and commit again with its trigger's current settings."""
    remote = _remote(ctx)
    build = remote.call("POST", f"{remote.builds}/builds/{build_uuid}/retry")
    _emit(build, as_json, _row(build))
