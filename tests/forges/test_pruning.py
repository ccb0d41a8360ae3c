"""Outbox pruning: settled rows past BUILDSD_OUTBOX_RETENTION_DAYS are deleted by the sender,
in batches; a pending row never is. Time moves on the virtual clock (clock.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buildsd import clock
from buildsd.store import outbox
from tests.api.flows import base, build_token, connection_body, ok, trigger_body
from tests.conftest import World
from tests.forges.conftest import SHA, queue_build, run_build, set_forge, updates
from tests.forges.fakeforge import Forge

DAY = 86_400.0


@pytest.fixture(autouse=True)
def real_clock() -> Iterator[None]:
    yield
    clock.reset_virtual()


def _until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"never happened: {check()}"
        time.sleep(0.05)
    return found


def _delivered(world: World, build_uuid: str) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        listed = updates(world, build_uuid)
        done = len(listed) == 4 and {u["state"] for u in listed} == {"delivered"}
        return listed if done else None

    try:
        return list(_until(check))
    except AssertionError:
        raise AssertionError(updates(world, build_uuid)) from None


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _gitlab_build(world: World) -> str:
    """A build whose forge never answers: its first update stays pending, retried."""
    made = ok(
        world.client.put(
            base(world) + "/repos/connections",
            json=connection_body(provider_type="gitlab", repo_id="77"),
            headers=world.auth,
        )
    )
    body = trigger_body(made, build_token(world), external_script_id="c3" * 16)
    trig = ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth))
    return str(
        ok(
            world.client.post(
                base(world) + f"/triggers/{trig['trigger_uuid']}/builds",
                json={"branch": "main", "commit_hash": SHA},
                headers=world.auth,
            )
        )["build_uuid"]
    )


def test_the_sender_prunes_settled_updates_past_the_retention(forge_world, forge: Forge):
    world = forge_world(outbox_max_attempts=1_000_000)
    set_forge(world, "github", forge.url)
    set_forge(world, "gitlab", _closed_port())
    old = queue_build(world)
    run_build(world)
    _delivered(world, old)
    stuck = _gitlab_build(world)
    run_build(world)  # its four updates pending: the first retried, the rest behind it
    _until(lambda: updates(world, stuck)[0]["attempts"] >= 2)
    clock.advance(29 * DAY)
    young = queue_build(world)
    run_build(world)
    _delivered(world, young)
    clock.advance(2 * DAY)  # old's rows are 31 days old now, young's 2
    _until(lambda: updates(world, old) == [])
    assert len(updates(world, young)) == 4
    # 31 days old, still pending: kept.
    assert [u["state"] for u in updates(world, stuck)] == ["pending"] * 4


def test_pruning_goes_in_batches_and_never_takes_a_pending_row(forge_world, forge: Forge):
    world = forge_world()
    set_forge(world, "github", forge.url)
    build_uuid = queue_build(world)
    run_build(world)
    _delivered(world, build_uuid)
    forge.failures = [503] * 1000
    waiting = queue_build(world)  # its first update pending (retried), the rest behind it
    later = "2999-01-01T00:00:00.000Z"

    async def prune(limit: int) -> int:
        async with world.services.db.transaction() as conn:
            return await outbox.prune(conn, later, limit)

    assert [world.run(prune(3)), world.run(prune(3)), world.run(prune(3))] == [3, 1, 0]
    assert updates(world, build_uuid) == []
    assert [u["state"] for u in updates(world, waiting)] == ["pending"]


def test_retention_zero_keeps_everything(forge_world, forge: Forge):
    world = forge_world(outbox_retention_days=0)
    set_forge(world, "github", forge.url)
    build_uuid = queue_build(world)
    run_build(world)
    _delivered(world, build_uuid)
    clock.advance(3650 * DAY)
    assert world.run(world.services.outbox.prune()) == 0
    assert len(updates(world, build_uuid)) == 4
