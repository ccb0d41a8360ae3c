"""`buildsd emulate`: the API as a test double (docs/testing.md): ephemeral data, any free port,
no rate limits, simulated builds, the control API; one JSON line on stdout, then it serves."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
import msgspec

from buildsd import clock, logs
from buildsd.api.protocol import guarded_protocol
from buildsd.app import create_app
from buildsd.cli.common import prepare, run_with_services, settings_of
from buildsd.config import Settings, load_settings
from buildsd.errors import ConfigError
from buildsd.services import Services
from buildsd.services.emulation import Seed

_WHERE = ("data_dir", "database_url")
# Emulator defaults; a BUILDSD_* variable or a flag wins over each.
_DEFAULTS: dict[str, Any] = {
    "rate_limit": 0,
    "runner": "simulate",
    "runner_slots": 8,
    "log_level": "warning",
}


async def _nothing(services: Services) -> None:
    return None


async def _seed(path: str, services: Services) -> None:
    try:
        document = msgspec.json.decode(Path(path).read_bytes(), type=Seed)
    except (OSError, msgspec.DecodeError) as exc:  # ValidationError is a DecodeError
        raise click.ClickException(f"seed {path}: {exc}") from exc
    await services.emulation.seed(document)


@dataclass
class Prepared:
    """An emulator ready to serve: its settings, its listening socket, its JSON line."""

    settings: Settings
    sock: socket.socket
    line: dict[str, str]
    ephemeral: str | None

    def server(self) -> Any:
        import uvicorn

        settings = self.settings
        config = uvicorn.Config(
            create_app(settings),
            loop="uvloop",
            http=guarded_protocol(
                settings.header_timeout_seconds,
                settings.max_header_bytes,
                settings.body_timeout_seconds,
            ),
            log_level=settings.log_level,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        return uvicorn.Server(config)

    def close(self) -> None:
        self.sock.close()
        if self.ephemeral is not None:
            shutil.rmtree(self.ephemeral, ignore_errors=True)


def _settings(host: str, port: int, overrides: dict[str, Any]) -> Settings:
    fixed = load_settings(**overrides)
    defaults = {k: v for k, v in _DEFAULTS.items() if f"BUILDSD_{k.upper()}" not in os.environ}
    return load_settings(
        **{
            **defaults,
            **{key: value for key, value in overrides.items() if value is not None},
            "host": host,
            "port": port,
            "control_api": True,
            "deploy_target": "self",
            "grants": "all",  # every isolated account may connect any repository (D21)
            "bootstrap_account_id": fixed.bootstrap_account_id or clock.new_hex32(),
            "bootstrap_token": fixed.bootstrap_token or secrets.token_urlsafe(30)[:40],
        }
    )


def prepare_emulator(host: str = "127.0.0.1", port: int = 0, **overrides: Any) -> Prepared:
    """Listen, and settle the emulator's settings (BUILDSD_* env and
    `overrides` win over them); the data dir is a new temporary one unless one is given."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    ephemeral = None
    given = [overrides.get(name) or os.environ.get(f"BUILDSD_{name.upper()}") for name in _WHERE]
    if not any(given):
        ephemeral = tempfile.mkdtemp(prefix="buildsd-emulate-")
        overrides["data_dir"] = ephemeral
    try:
        settings = _settings(host, sock.getsockname()[1], overrides)
    except ConfigError:
        Prepared(Settings(), sock, {}, ephemeral).close()
        raise
    port = settings.port
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    line = {
        "url": f"{url}/client/v4",
        "account_id": str(settings.bootstrap_account_id),
        "token": str(settings.bootstrap_token),
        "control_url": f"{url}/_buildsd",
    }
    return Prepared(settings, sock, line, ephemeral)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address")
@click.option("--port", type=int, default=0, show_default=True, help="Port; 0 = any free one")
@click.option("--rate-limit", type=int, help="Requests per 300 s per credential [0 = off]")
@click.option(
    "--runner",
    type=click.Choice(["simulate", "real"]),
    help="Simulated builds (default), or real ones: git and commands",
)
@click.option("--runner-slots", type=int, help="Builds at once [8]")
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Load this seed document at start-up [BUILDSD_SEED_FILE]",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def emulate(ctx: click.Context, /, host: str, port: int, **flags: Any) -> None:
    """Serve buildsd as a test double; prints {"url","account_id","token","control_url"}.

    The data dir is a new temporary one (removed at exit) unless --data-dir, --database-url
    or BUILDSD_DATA_DIR names one.
    """
    settings_of(ctx)  # the environment's mistakes, as every command reports them
    try:
        prepared = prepare_emulator(host, port, **ctx.obj, **flags)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        logs.configure(prepared.settings.log_level, prepared.settings.log_format)
        prepare(prepared.settings)
        run_with_services(prepared.settings, _nothing)  # bootstrap; its notice goes to stderr
        if prepared.settings.seed_file:
            run_with_services(prepared.settings, partial(_seed, prepared.settings.seed_file))
        # The socket listens already: a client that reads this line may connect at once.
        click.echo(json.dumps(prepared.line))
        sys.stdout.flush()
        prepared.server().run(sockets=[prepared.sock])
    finally:
        prepared.close()
