"""A world whose account's forge is a local fake, and builds driven through the runner's service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.api.flows import base, ok, trigger
from tests.conftest import KNOWN_SECRETS, World
from tests.forges import fakeforge

FORGE_TOKEN = "ghp_forge-token-that-must-never-leak-0123"
KNOWN_SECRETS.add(FORGE_TOKEN)
SHA = "0123456789abcdef0123456789abcdef01234567"
FAST = {
    "runner_slots": 0,
    "outbox_backoff_seconds": 0.05,
    "outbox_backoff_cap_seconds": 0.2,
    "outbox_poll_seconds": 0.05,
    "forge_timeout_seconds": 0.5,
}


@pytest.fixture
def forge() -> Iterator[fakeforge.Forge]:
    with fakeforge.serve() as served:
        yield served


@pytest.fixture
def forge_world(make_world: Callable[..., World]) -> Callable[..., World]:
    def make(**overrides: Any) -> World:
        return make_world(**{**FAST, **overrides})

    return make


def set_forge(
    world: World, forge: str, url: str, account: str | None = None, token: str = FORGE_TOKEN
) -> str:
    return str(
        world.run(world.services.outbox.set_credential(account or world.account, forge, token, url))
    )


def queue_build(world: World, **trigger_fields: Any) -> str:
    made = trigger(world, **trigger_fields)
    build = ok(
        world.client.post(
            base(world) + f"/triggers/{made['trigger_uuid']}/builds",
            json={"branch": "main", "commit_hash": SHA},
            headers=world.auth,
        )
    )
    return str(build["build_uuid"])


def run_build(world: World, outcome: str = "success", **facts: str) -> Any:
    """Claim the next queued build and take it through running to `outcome`, as a runner does."""
    services = world.services
    job = world.run(services.runs.claim("test-runner"))
    assert job is not None
    assert world.run(services.runs.start_running(job))
    if facts:
        world.run(services.runs.record(job, **facts))
    assert world.run(services.runs.finish(job, outcome))
    return job


def updates(world: World, build_uuid: str) -> list[dict[str, Any]]:
    return list(
        ok(
            world.client.get(
                base(world) + f"/builds/{build_uuid}/forge_updates", headers=world.auth
            )
        )
    )
