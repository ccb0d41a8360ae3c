"""Stored deliveries matched longer ago than BUILDSD_WEBHOOK_DELIVERY_RETENTION_DAYS go."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from buildsd import clock
from buildsd.config import load_settings
from buildsd.errors import ConfigError
from buildsd.services import webhook_retention
from buildsd.services.webhooks import Webhooks
from tests.conftest import World
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    deliver_github,
    deliveries,
    idle,
    read,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import github_commit, github_push


def days_ago(days: int) -> str:
    return clock.format_epoch_ms(time.time_ns() // 1_000_000 - days * 86_400_000)


def backdate(world: World, delivery_uuids: list[str], days: int) -> None:
    """As if these deliveries had been received (and, if matched, matched) `days` ago."""

    async def run() -> None:
        async with world.services.db.transaction() as conn:
            for uuid in delivery_uuids:
                params = {"at": days_ago(days), "uuid": uuid}
                await conn.run(
                    "UPDATE webhook_deliveries SET received_on = :at WHERE delivery_uuid = :uuid",
                    params,
                )
                await conn.run(
                    "UPDATE webhook_deliveries SET processed_on = :at "
                    "WHERE delivery_uuid = :uuid AND processed_on IS NOT NULL",
                    params,
                )

    world.run(run())


def stored(world: World) -> set[str]:
    return {row["delivery_uuid"] for row in read(world, "SELECT * FROM webhook_deliveries")}


def prune(world: World, **kw: Any) -> int:
    return int(world.run(world.services.webhooks.retention.prune(**kw)))


def push(world: World, branch: str, status: str = "accepted", **kw: Any) -> str:
    payload = github_push(branch, [github_commit(f"On {branch}")], **kw)
    ack = accepted(deliver_github(world, payload, delivery=f"d-{branch}"), status)
    return str(ack["delivery_uuid"])


def test_old_matched_deliveries_go_unmatched_and_recent_ones_stay(
    hooks: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Webhooks, "run", idle)  # the test matches and prunes
    world = hooks()  # the default retention: 30 days
    add_trigger(world, connect(world), branch_includes=["*"])
    old = [push(world, "a"), push(world, "b"), push(world, "t", "ignored", ref="refs/tags/v1")]
    old.append(push(world, "a", "duplicate"))
    settle(world)
    recent = push(world, "recent")
    settle(world)
    waiting = push(world, "waiting")  # stored, never matched (the matcher was down)
    backdate(world, [*old, waiting], days=31)
    backdate(world, [recent], days=29)
    builds = len(worker_builds(world))
    count = "SELECT COUNT(*) AS n FROM webhook_matches WHERE delivery_uuid = '{}'"
    assert read(world, count.format(old[0])) == [{"n": 1}]

    assert prune(world, limit=3) == 3  # batches are bounded
    assert prune(world) == 1
    assert prune(world) == 0
    assert stored(world) == {recent, waiting}
    matches = read(world, "SELECT delivery_uuid FROM webhook_matches")
    assert [row["delivery_uuid"] for row in matches] == [recent]
    assert [d["delivery_uuid"] for d in deliveries(world)] == [recent]
    assert len(worker_builds(world)) == builds  # the builds stay

    settle(world)  # the unmatched delivery is still there to match
    assert {d["delivery_uuid"] for d in deliveries(world)} == {recent, waiting}
    assert len(worker_builds(world)) == builds + 1


def test_retention_zero_keeps_every_delivery(hooks: Callable[..., World]) -> None:
    world = hooks(webhook_delivery_retention_days=0)
    add_trigger(world, connect(world))
    kept = [push(world, "main"), push(world, "other")]
    settle(world)
    backdate(world, kept, days=3650)
    assert prune(world) == 0
    assert stored(world) == set(kept)


def test_the_matcher_prunes_in_the_background(
    hooks: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_retention, "PRUNE_SECONDS", 0.0)
    world = hooks(webhook_delivery_retention_days=1)
    add_trigger(world, connect(world))
    gone = push(world, "main")
    settle(world)
    backdate(world, [gone], days=2)
    world.services.webhooks.notify()
    deadline = time.monotonic() + 10
    while stored(world) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(world) == set()


def test_pruning_reads_indexes(world: World) -> None:
    """Finding old deliveries and their decisions must not scan either table."""
    db = world.services.db
    queries = {
        "ix_webhook_deliveries_processed_on": "SELECT delivery_uuid FROM webhook_deliveries "
        "WHERE processed_on < '2024-01-01' ORDER BY processed_on LIMIT 500",
        "ix_webhook_matches_delivery_uuid": "DELETE FROM webhook_matches "
        "WHERE delivery_uuid IN ('a', 'b')",
    }

    async def plans() -> dict[str, str]:
        found = {}
        async with db.transaction() as conn:
            if db.dialect == "postgresql":
                await conn.run("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
            for index, sql in queries.items():
                rows = await conn.all(explain + sql)
                found[index] = " ".join(str(value) for row in rows for value in dict(row).values())
        return found

    for index, plan in world.run(plans()).items():
        assert index in plan, plan


def test_the_retention_setting() -> None:
    env = {"BUILDSD_WEBHOOK_DELIVERY_RETENTION_DAYS": "7"}
    assert load_settings(env=env).webhook_delivery_retention_days == 7
    assert load_settings(env={}).webhook_delivery_retention_days == 30
    with pytest.raises(ConfigError, match="BUILDSD_WEBHOOK_DELIVERY_RETENTION_DAYS"):
        load_settings(env={"BUILDSD_WEBHOOK_DELIVERY_RETENTION_DAYS": "-1"})
