"""An app that takes webhooks, and the steps the webhook tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from buildsd.services.webhooks import Webhooks
from tests.api.flows import TAG, base, build_token, connection, ok, trigger_body
from tests.conftest import KNOWN_SECRETS, World
from tests.webhooks.payloads import (
    GITHUB_SECRET,
    GITLAB_TOKEN,
    REPO_ID,
    body_of,
    github_headers,
    gitlab_headers,
)

KNOWN_SECRETS.update({GITHUB_SECRET, GITLAB_TOKEN})


@pytest.fixture
def hooks(make_world: Callable[..., World]) -> Callable[..., World]:
    """make_world with both webhook secrets set."""

    def make(**overrides: Any) -> World:
        settings = {
            "github_webhook_secret": GITHUB_SECRET,
            "gitlab_webhook_token": GITLAB_TOKEN,
            **overrides,
        }
        return make_world(**settings)

    return make


@pytest.fixture
def world(hooks: Callable[..., World]) -> World:
    return hooks()


def deliver_github(
    world: World, payload: Any, event: str = "push", delivery: str | None = None, **extra: str
) -> httpx.Response:
    body = body_of(payload)
    headers = {**github_headers(body, event, delivery), **extra}
    return world.client.post("/webhooks/github", content=body, headers=headers)


def deliver_gitlab(
    world: World, payload: Any, event: str = "Push Hook", delivery: str | None = None
) -> httpx.Response:
    body = body_of(payload)
    return world.client.post(
        "/webhooks/gitlab", content=body, headers=gitlab_headers(event, delivery)
    )


def accepted(response: httpx.Response, status: str = "accepted") -> dict[str, Any]:
    result = ok(response)
    assert result["status"] == status, result
    return dict(result)


def read(world: World, sql: str) -> list[dict[str, Any]]:
    """The rows a query of the world's database returns."""

    async def run() -> list[dict[str, Any]]:
        async with world.services.db.connection() as conn:
            return [dict(row) for row in await conn.all(sql)]

    return list(world.run(run()))


async def idle(self: Webhooks, stopping: asyncio.Event) -> None:
    """Webhooks.run for a process that matches nothing in the background (monkeypatched in):
    deliveries wait, stored, until the test matches them (settle) or another process does."""
    await stopping.wait()


def settle(world: World) -> None:
    """Wait until every stored delivery is matched (the app matches them in the background)."""
    world.run(world.services.webhooks.match_pending())


def connect(world: World, provider_type: str = "github") -> tuple[dict[str, Any], dict[str, Any]]:
    """The connection of the payloads' repository and a build token, in world's account."""
    conn = connection(world, repo_id=str(REPO_ID), provider_type=provider_type)
    return conn, build_token(world)


def add_trigger(
    world: World,
    setup: tuple[dict[str, Any], dict[str, Any]],
    tag: str = TAG,
    **fields: Any,
) -> dict[str, Any]:
    body = trigger_body(*setup, external_script_id=tag, **fields)
    return dict(ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth)))


def worker_builds(world: World, tag: str = TAG) -> list[dict[str, Any]]:
    url = base(world) + f"/workers/{tag}/builds"
    return list(ok(world.client.get(url, headers=world.auth)))


def deliveries(world: World, **params: Any) -> list[dict[str, Any]]:
    url = base(world) + "/webhook_deliveries"
    return list(ok(world.client.get(url, params=params, headers=world.auth)))


def decisions(world: World, delivery_uuid: str) -> dict[str, dict[str, Any]]:
    """This account's decisions on a delivery, by trigger name."""
    found = [d for d in deliveries(world, per_page=200) if d["delivery_uuid"] == delivery_uuid]
    assert found, f"delivery {delivery_uuid} not listed"
    return {d["trigger_name"]: d for d in found[0]["decisions"]}
