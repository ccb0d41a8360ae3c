"""The log stream's fan-out: many watchers of one build share one database reader, and each
gets every line once, in order, whenever it joined (services/log_stream.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from buildsd.services import log_stream
from buildsd.services.builds import encode_cursor
from tests.api.flows import build
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for


def lines_of(chunks: list[bytes]) -> tuple[list[str], list[str]]:
    texts, ends = [], []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == "line":
            texts.append(json.loads(fields["data"])[1])
        elif fields.get("event") == "end":
            ends.append(fields["data"])
    return texts, ends


def test_many_watchers_share_one_reader(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(
        world,
        build_command="for i in $(seq 1 200); do echo n$i; sleep 0.005; done",
        deploy_command="true",
    )
    queued = build(world, t["trigger_uuid"])
    builds = world.services.builds
    reads = {"n": 0}
    original = builds.tail_rows

    async def counted(*args: Any) -> Any:
        reads["n"] += 1
        return await original(*args)

    builds.tail_rows = counted  # type: ignore[method-assign]
    watchers = 30

    async def watch() -> list[bytes]:
        stream = await world.services.log_streams.open(world.account, queued["build_uuid"], None)
        return [chunk async for chunk in stream]

    async def all_of_them() -> list[list[bytes]]:
        return await asyncio.gather(*(watch() for _ in range(watchers)))

    try:
        results = world.run(all_of_them())
    finally:
        builds.tail_rows = original  # type: ignore[method-assign]
    stored = log_lines(world, queued["build_uuid"])
    for chunks in results:
        texts, ends = lines_of(chunks)
        assert texts == stored  # every line, once, in order
        assert len(ends) == 1 and json.loads(ends[0])["build_outcome"] == "success"
    # One initial read per watcher, then one shared reader: far fewer than one poll per watcher.
    assert reads["n"] < watchers + 200, reads
    assert world.services.log_streams._tails == {}  # the last watcher to leave stops the reader
    wait_for(world, queued["build_uuid"])


class FakeBuilds:
    """tail_rows and get over a list, two lines a page, to reach every path of a watcher."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, int, str]] = []
        self.status = "running"

    async def tail_rows(self, account_id: str, build_uuid: str, after: int) -> Any:
        status = self.status
        return [row for row in self.lines if row[0] > after][:2], status

    async def get(self, account_id: str, build_uuid: str) -> Any:
        class Done:
            status = "stopped"
            build_outcome = "success"

        return Done()


def test_a_watcher_behind_the_kept_lines_reads_the_database(monkeypatch) -> None:
    monkeypatch.setattr(log_stream, "KEPT_LINES", 3)
    monkeypatch.setattr(log_stream, "STREAM_POLL_SECONDS", 0.001)
    monkeypatch.setattr(log_stream, "KEEPALIVE_SECONDS", 0.05)
    fake = FakeBuilds()
    streams = log_stream.LogStreams(fake)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        first = await streams.open("a", "b", None)
        early: list[bytes] = [await anext(first)]  # nothing yet: a keepalive
        fake.lines = [(i, i, f"n{i}") for i in range(1, 11)]
        while b"n10" not in b"".join(early):
            early.append(await anext(first))
        tail = streams._tails[("a", "b")]
        assert tail.base == 7  # only 8..10 kept
        late = await streams.open("a", "b", encode_cursor(0))
        fake.status = "stopped"
        rest = [chunk async for chunk in late]
        early += [chunk async for chunk in first]
        return early, rest

    early, late = asyncio.run(scenario())
    want = [f"n{i}" for i in range(1, 11)]
    assert lines_of(early)[0] == want and lines_of(late)[0] == want
    assert b": keepalive" in early[0]
    assert streams._tails == {}


def test_unknown_build_raises_before_streaming(runner_world, repo: Repo) -> None:
    world = runner_world()
    from buildsd.errors import NotFound

    with pytest.raises(NotFound):
        world.run(world.services.log_streams.open(world.account, "nope", None))
