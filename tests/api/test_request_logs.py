"""Request ids and structured logs: a cf-ray id on every answer, one JSON line per request and per
build state change, and no credential or secret in any of them."""

from __future__ import annotations

import json
import logging
import re

from buildsd.logs import JsonFormatter
from tests.api.flows import base, build, trigger
from tests.conftest import TOKEN, World


def test_every_answer_carries_a_request_id(world: World) -> None:
    ids = set()
    for response in (
        world.client.get(base(world) + "/tokens", headers=world.auth),
        world.client.get(base(world) + "/tokens"),
        world.client.get("/nope"),
        world.client.get("/healthz"),
    ):
        assert re.fullmatch(r"[0-9a-f]{16}-BSD", response.headers["cf-ray"])
        ids.add(response.headers["cf-ray"])
    assert len(ids) == 4


def test_one_access_line_per_request(world: World, caplog) -> None:
    caplog.clear()
    response = world.client.get(base(world) + "/tokens", headers=world.auth, params={"per_page": 5})
    (record,) = [r for r in caplog.records if r.name == "buildsd.access"]
    assert record.request_id == response.headers["cf-ray"]
    assert (record.operation, record.status, record.account) == (
        "listBuildTokens",
        200,
        world.account,
    )
    assert record.path.endswith("/builds/tokens") and record.duration_ms >= 0
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "buildsd.access" and line["request_id"] == record.request_id
    assert line["time"].endswith("Z")
    assert TOKEN not in json.dumps(line) and "per_page" not in json.dumps(line)


def test_build_state_changes_are_logged(world: World, caplog) -> None:
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])
    world.client.put(base(world) + f"/builds/{queued['build_uuid']}/cancel", headers=world.auth)
    states = [
        (r.status, getattr(r, "outcome", None))
        for r in caplog.records
        if r.name == "buildsd.builds" and r.build_uuid == queued["build_uuid"]
    ]
    assert states == [("queued", None), ("stopped", "cancelled")]


def test_the_json_formatter_keeps_extras_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("it",), None)
        import sys

        record.exc_info = sys.exc_info()
    record.build_uuid = "b"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed it" and line["build_uuid"] == "b"
    assert "ValueError: boom" in line["exception"]
