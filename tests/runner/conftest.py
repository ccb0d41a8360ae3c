"""Real git repositories served by file://, and an app whose runner builds from them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.flows import base, build_token, connection, ok, trigger_body
from tests.conftest import World
from tests.gitrepo import Repo, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


@pytest.fixture
def runner_world(make_world, repo: Repo, tmp_path: Path) -> Callable[..., World]:
    """An app with a runner that clones file:// repositories under tmp_path/git."""

    def make(**overrides: Any) -> World:
        settings = {
            "runner_slots": 2,
            "git_url_github": f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git",
            "lease_seconds": 3,
            "cancel_grace_seconds": 2,
            **overrides,
        }
        return make_world(**settings)

    return make


def make_trigger(world: World, **fields: Any) -> dict[str, Any]:
    body = trigger_body(connection(world), build_token(world), **fields)
    return dict(ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth)))


def wait_for(
    world: World, build_uuid: str, statuses: tuple[str, ...] = ("stopped",), timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = ok(world.client.get(base(world) + f"/builds/{build_uuid}", headers=world.auth))
        if got["status"] in statuses:
            return dict(got)
        if time.monotonic() > deadline:
            raise AssertionError(f"build still {got['status']} after {timeout} s")
        time.sleep(0.05)


def log_lines(world: World, build_uuid: str) -> list[str]:
    lines: list[str] = []
    cursor = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        page = ok(
            world.client.get(
                base(world) + f"/builds/{build_uuid}/logs", params=params, headers=world.auth
            )
        )
        lines += [text for _, text in page["lines"]]
        cursor = page["cursor"]
        if not page["truncated"]:
            return lines


def wait_line(world: World, build_uuid: str, line: str, timeout: float = 20) -> None:
    """Until the build's log holds `line`."""
    deadline = time.monotonic() + timeout
    while line not in log_lines(world, build_uuid):
        assert time.monotonic() < deadline, f"no line {line!r}"
        time.sleep(0.05)
