"""`buildsd workers create|list` (D16): a Worker's tag for scripts, its name for deploy hooks."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import ACCOUNT, TOKEN
from tests.e2e.test_cli import buildsd, last_line

pytestmark = pytest.mark.slow


def test_create_prints_the_tag_and_list_shows_it(env: dict[str, str]) -> None:
    tag = last_line(buildsd(env, "workers", "create", "my-worker", "--account", ACCOUNT))
    assert re.fullmatch(r"[0-9a-f]{32}", tag)
    other = last_line(buildsd(env, "workers", "create", "second", "--account", ACCOUNT))
    assert other != tag
    listing = buildsd(env, "workers", "list", "--account", ACCOUNT).stdout.splitlines()
    assert listing[-2:] == [f"{tag}  my-worker", f"{other}  second"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("workers", "create", "my-worker", "--account", ACCOUNT), "already has a Worker"),
        (("workers", "create", "fresh", "--account", "f" * 32), "no account"),
        (("workers", "create", "Not A Name", "--account", ACCOUNT), "Worker name"),
        (("workers", "create", "x" * 64, "--account", ACCOUNT), "Worker name"),
    ],
)
def test_bad_input_fails_with_a_message(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    buildsd(env, "workers", "create", "my-worker", "--account", ACCOUNT)
    done = buildsd(env, *args, ok=False)
    assert done.returncode != 0
    assert "Error" in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr
    listing = buildsd(env, "workers", "list", "--account", ACCOUNT).stdout
    assert listing.count("my-worker") == 1 and "fresh" not in listing


def test_a_worker_made_by_the_cli_takes_deploy_hooks_by_name(
    env: dict[str, str], start_server
) -> None:
    tag = last_line(buildsd(env, "workers", "create", "site", "--account", ACCOUNT))
    server = start_server()
    url = f"{server.url}/client/v4/accounts/{ACCOUNT}/builds/workers/site/deploy_hooks"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    made = httpx.post(url, json={"deploy_hook_name": "nightly", "branch": "main"}, headers=auth)
    assert made.status_code == 200, made.text
    assert made.json()["result"]["external_script_id"] == tag
    # The trigger URL answers without credentials; without a trigger there is nothing to build.
    hook = made.json()["result"]["deploy_hook_uuid"]
    fired = httpx.post(f"{server.url}/client/v4/workers/builds/deploy_hooks/{hook}")
    assert fired.status_code == 404 and fired.json()["errors"][0]["code"] == 12000
