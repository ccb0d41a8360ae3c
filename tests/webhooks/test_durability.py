"""Stored before answered, matched exactly once: crashes, concurrent copies, superseded builds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from buildsd.services.webhooks import MAX_ATTEMPTS, Webhooks
from tests.api.flows import base, build, ok
from tests.conftest import World
from tests.runner.conftest import log_lines
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    deliver_github,
    idle,
    read,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import body_of, github_commit, github_headers, github_push


def test_a_delivery_stored_but_never_matched_is_matched_by_the_next_process(
    hooks: Callable[..., World], monkeypatch
) -> None:
    monkeypatch.setattr(Webhooks, "run", idle)  # it dies after answering, before matching
    first = hooks()
    add_trigger(first, connect(first))
    ack = accepted(deliver_github(first, github_push()))
    assert worker_builds(first) == []
    assert read(first, "SELECT processed_on FROM webhook_deliveries") == [{"processed_on": None}]
    monkeypatch.undo()
    second = hooks()  # a new process on the same database: its start-up matches what is left
    deadline = time.monotonic() + 10
    while not worker_builds(second) and time.monotonic() < deadline:
        time.sleep(0.05)
    [queued] = worker_builds(second)
    assert queued["build_trigger_metadata"]["build_trigger_source"] == "push_event"
    [row] = read(second, "SELECT delivery_uuid, processed_on FROM webhook_deliveries")
    assert row["delivery_uuid"] == ack["delivery_uuid"] and row["processed_on"]


def test_concurrent_copies_of_a_delivery_store_and_build_once(
    hooks: Callable[..., World], monkeypatch
) -> None:
    monkeypatch.setattr(Webhooks, "run", idle)  # the test matches, three matchers at once
    world = hooks()
    add_trigger(world, connect(world))
    body = body_of(github_push())
    headers = {k.lower(): v for k, v in github_headers(body, delivery="same-id").items()}

    async def copies() -> list[Any]:
        receive = world.services.webhooks.receive
        return list(await asyncio.gather(*(receive("github", headers, body) for _ in range(20))))

    acks = world.run(copies())
    assert sorted(ack.status for ack in acks).count("accepted") == 1
    assert worker_builds(world) == []

    async def matchers() -> list[int]:
        matching = world.services.webhooks.match_pending
        return list(await asyncio.gather(*(matching() for _ in range(3))))

    # 20 rows (one accepted, 19 duplicates), each matched by exactly one of the three.
    assert sum(world.run(matchers())) == 20
    assert len(worker_builds(world)) == 1


def test_a_new_push_cancels_queued_builds_it_supersedes(hooks: Callable[..., World]) -> None:
    world = hooks(cancel_superseded=True)
    trigger = add_trigger(world, connect(world), branch_includes=["*"])
    manual = build(world, trigger["trigger_uuid"], branch="main")
    first, second = github_commit("One"), github_commit("Two")
    accepted(deliver_github(world, github_push("main", [first])))
    accepted(deliver_github(world, github_push("feature", [github_commit("Elsewhere")])))
    settle(world)
    accepted(deliver_github(world, github_push("main", [second])))
    settle(world)
    by_commit = {
        b["build_trigger_metadata"]["commit_hash"] or "manual": b for b in worker_builds(world)
    }
    old = by_commit[first["id"]]
    assert (old["status"], old["build_outcome"]) == ("stopped", "cancelled")
    assert (
        f"Cancelled: superseded by a push of {second['id']}"
        in log_lines(world, old["build_uuid"])[0]
    )
    assert by_commit[second["id"]]["status"] == "queued"
    assert by_commit["manual"]["build_uuid"] == manual["build_uuid"]
    assert {b["status"] for k, b in by_commit.items() if k != first["id"]} == {"queued"}


def test_superseded_builds_stay_by_default(world: World) -> None:
    add_trigger(world, connect(world))
    accepted(deliver_github(world, github_push("main", [github_commit("One")])))
    accepted(deliver_github(world, github_push("main", [github_commit("Two")])))
    settle(world)
    assert [b["status"] for b in worker_builds(world)] == ["queued", "queued"]


def test_a_delivery_whose_matching_keeps_failing_is_given_up(world: World, monkeypatch) -> None:
    add_trigger(world, connect(world))

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in matching")

    monkeypatch.setattr(Webhooks, "_decide", broken)
    accepted(deliver_github(world, github_push()))
    for _ in range(MAX_ATTEMPTS):
        settle(world)
    [row] = read(world, "SELECT processed_on, attempts, reason FROM webhook_deliveries")
    assert row["attempts"] == MAX_ATTEMPTS and row["processed_on"]
    assert row["reason"] == "matching failed repeatedly: see the server log"
    monkeypatch.undo()
    # Later deliveries are not held up by it.
    accepted(deliver_github(world, github_push("main", [github_commit("Next")])))
    settle(world)
    assert len(worker_builds(world)) == 1
    url = base(world) + "/webhook_deliveries"
    assert len(ok(world.client.get(url, headers=world.auth))) == 1
