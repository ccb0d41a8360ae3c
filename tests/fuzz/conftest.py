"""A world with one of everything, so fuzzed requests reach real rows and not only 404s."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.flows import META, base, form, ok, trigger_body
from tests.conftest import World
from tests.e2e.conftest import env, start_server  # noqa: F401  (real servers: test_hostile_server)
from tests.gitrepo import make_repo
from tests.webhooks.conftest import connect, deliver_github
from tests.webhooks.payloads import GITHUB_SECRET, github_push

WORKER_NAME = "my-worker"
VARIABLE = "API_URL"


@dataclass
class Seeded:
    """The world and the id of each kind of thing in it, by path parameter name."""

    world: World
    ids: dict[str, str]


def seed(world: World) -> dict[str, str]:
    """One Worker, connection, build token, trigger, variable, stopped build, deploy hook,
    webhook delivery and grant; returns their ids under the names the route table's paths
    give them."""
    tag = str(world.run(world.services.workers.create(world.account, WORKER_NAME)))
    conn, token = connect(world)
    body = trigger_body(conn, token, external_script_id=tag)
    trigger = ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth))
    trigger_url = f"{base(world)}/triggers/{trigger['trigger_uuid']}"
    variables = {VARIABLE: {"value": "https://example.com", "is_secret": False}}
    ok(
        world.client.patch(
            trigger_url + "/environment_variables", json=variables, headers=world.auth
        )
    )
    subscription = ok(  # it hears of the cancel below: a delivery in its ledger
        world.client.post(
            f"{base(world)}/event_subscriptions",
            json={"name": "fuzz", "url": "http://127.0.0.1:9/", "events": ["build.canceled"]},
            headers=world.auth,
        )
    )
    build = ok(
        world.client.post(trigger_url + "/builds", json={"branch": "main"}, headers=world.auth)
    )
    # Stopped, so its log stream ends instead of waiting for a runner that never comes.
    ok(world.client.put(f"{base(world)}/builds/{build['build_uuid']}/cancel", headers=world.auth))
    ledger = f"{base(world)}/event_subscriptions/{subscription['id']}/deliveries"
    while (event := ok(world.client.get(ledger, headers=world.auth))[0])["state"] == "pending":
        time.sleep(0.02)
    hooks_url = f"{base(world)}/workers/{WORKER_NAME}/deploy_hooks"
    hook = ok(
        world.client.post(
            hooks_url,
            json={"deploy_hook_name": "deploy main", "branch": "main"},
            headers=world.auth,
        )
    )
    body, kind = form(META)  # the Worker's script: a version and a deployment
    script_url = f"/client/v4/accounts/{world.account}/workers/scripts/{WORKER_NAME}"
    headers = {**world.auth, "Content-Type": kind}
    ok(world.client.put(script_url, content=body, headers=headers))
    version = ok(world.client.get(script_url + "/versions", headers=world.auth))["items"][0]
    deployment = ok(world.client.get(script_url + "/deployments", headers=world.auth))
    delivery = ok(deliver_github(world, github_push()))
    world.run(world.services.webhooks.match_pending())
    grant_id = world.grant()
    # Previews on, and the Preview a push of branch `feature` makes.
    on = {"previews_enabled": True}
    ok(world.client.patch(f"{base(world)}/workers/{tag}", json=on, headers=world.auth))
    preview_id = world.run(_preview_of(world, conn["repo_connection_uuid"]))
    return {
        "preview_id": preview_id,
        "account_id": world.account,
        "repo_connection_uuid": conn["repo_connection_uuid"],
        "provider_type": conn["provider_type"],
        "provider_account_id": conn["provider_account_id"],
        "repo_id": conn["repo_id"],
        "build_token_uuid": token["build_token_uuid"],
        "trigger_uuid": trigger["trigger_uuid"],
        "environment_variable_key": VARIABLE,
        "external_script_id": tag,
        "script_tag": tag,
        "script_name": WORKER_NAME,
        "service_name": WORKER_NAME,
        "version_id": version["id"],
        "deployment_id": deployment["deployments"][0]["id"],
        "build_uuid": build["build_uuid"],
        "deploy_hook_uuid": hook["deploy_hook_uuid"],
        "delivery_uuid": delivery["delivery_uuid"],
        "grant_id": grant_id,
        "subscription_id": subscription["id"],
        "delivery_id": str(event["id"]),
    }


async def _preview_of(world: World, repo_connection_uuid: str) -> str:
    async with world.services.db.transaction() as conn:
        (made,) = await world.services.previews.for_push(conn, repo_connection_uuid, "feature")
        row = await conn.one(
            "SELECT preview_id FROM previews WHERE trigger_uuid = :uuid",
            {"uuid": made["trigger_uuid"]},
        )
    assert row is not None
    return str(row["preview_id"])


@pytest.fixture(scope="session")
def git_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """octo-org/my-worker.git with a Worker on main: what config autofill clones (read-only)."""
    root = tmp_path_factory.mktemp("fuzz-git")
    make_repo(root).commit(
        {
            "wrangler.toml": 'name = "my-worker"\nmain = "src/index.js"\n',
            "package.json": '{"scripts": {"build": "echo build"}}\n',
            "package-lock.json": "{}\n",
        },
        "A Worker",
    )
    return root


@pytest.fixture
def seeded(make_world: Callable[..., World], git_root: Path) -> Seeded:
    """A world (webhooks on, config autofill cloning a real local repository) with its seeds."""
    settings: dict[str, Any] = {
        "github_webhook_secret": GITHUB_SECRET,
        "git_url_github": f"file://{git_root}/git/{{provider_account_name}}/{{repo_name}}.git",
        # The seeded build event goes nowhere (port 9): given up at its first try, so the
        # world stays still while operations are fuzzed.
        "outbox_max_attempts": 1,
        "outbox_poll_seconds": 0.05,
    }
    world = make_world(**settings)
    return Seeded(world, seed(world))
