"""A world whose account's forge is a local fake, and builds driven through the runner's service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from buildsd.store import builds
from tests.api.flows import base, ok, trigger
from tests.conftest import KNOWN_SECRETS, World
from tests.forges import fakeforge

FORGE_TOKEN = "ghp_forge-token-that-must-never-leak-0123"
KNOWN_SECRETS.add(FORGE_TOKEN)
SHA = "0123456789abcdef0123456789abcdef01234567"
APP_ID = "123456"
# Installation tokens the fake issues: never in a response or a log line (nor the App's key).
KNOWN_SECRETS.add("ghs_installation-token-")
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


@pytest.fixture(scope="session")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(key: rsa.RSAPrivateKey) -> str:
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    KNOWN_SECRETS.add(text.splitlines()[5])  # a line of the key itself
    return text


@pytest.fixture
def app_forge(forge: fakeforge.Forge, app_key: rsa.RSAPrivateKey) -> fakeforge.Forge:
    """The fake forge as GitHub with the App installed: it verifies the App's JWTs."""
    forge.app_key, forge.app_id = app_key.public_key(), APP_ID
    return forge


def set_app(
    world: World, forge: fakeforge.Forge, key: rsa.RSAPrivateKey, installation: str | None = None
) -> str:
    return str(
        world.run(
            world.services.outbox.set_app(
                world.account, APP_ID, pem_of(key), installation, forge.url
            )
        )
    )


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


def open_pull_request(world: World, build_uuid: str, url: str) -> None:
    async def update() -> None:
        async with world.services.db.transaction() as conn:
            await conn.run(
                "UPDATE builds SET pull_request = :pr WHERE build_uuid = :uuid",
                {
                    "uuid": build_uuid,
                    "pr": f'{{"created_on":"2026-01-01T00:00:00.000Z","pull_request_url":"{url}"}}',
                },
            )
            await builds.rerender(conn, build_uuid)

    world.run(update())


def settled(world: World, build_uuid: str, timeout: float = 15) -> list[dict[str, Any]]:
    """The build's updates once none is pending (the sender records answers in rounds)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = updates(world, build_uuid)
        if listed and all(u["state"] != "pending" for u in listed):
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)
