"""Request ids and structured logs: a cf-ray id on every answer, one JSON line per request and per
build state change, and no credential or secret in any of them."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from typing import Any

from buildsd.logs import AccessLog, JsonFormatter
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


def _parsed(access_log: AccessLog) -> list[dict[str, Any]]:
    """The lines written since the last call."""
    access_log.flush()
    assert isinstance(access_log.stream, io.BytesIO)
    lines = access_log.stream.getvalue().splitlines()
    access_log.stream.seek(0)
    access_log.stream.truncate()
    return [json.loads(line) for line in lines]


def test_one_access_line_per_request(world: World, access_log: AccessLog) -> None:
    _parsed(access_log)
    response = world.client.get(base(world) + "/tokens", headers=world.auth, params={"per_page": 5})
    world.client.get("/healthz")
    first, second = _parsed(access_log)
    assert first["request_id"] == response.headers["cf-ray"]
    assert (first["operation"], first["status"], first["account"]) == (
        "listBuildTokens",
        200,
        world.account,
    )
    assert first["logger"] == "buildsd.access" and first["time"].endswith("Z")
    assert first["path"].endswith("/builds/tokens") and first["duration_ms"] >= 0
    assert TOKEN not in json.dumps(first) and "per_page" not in json.dumps(first)
    assert second["operation"] == "healthz" and second["account"] is None


def test_build_state_changes_are_logged(world: World, access_log: AccessLog) -> None:
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])
    world.client.put(base(world) + f"/builds/{queued['build_uuid']}/cancel", headers=world.auth)
    states = [
        (line["status"], line.get("outcome"), line["message"])
        for line in _parsed(access_log)
        if line["logger"] == "buildsd.builds" and line["build_uuid"] == queued["build_uuid"]
    ]
    uuid = queued["build_uuid"]
    assert states == [
        ("queued", None, f"build {uuid} queued"),
        ("stopped", "cancelled", f"build {uuid} stopped"),
    ]


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


def test_httpx_says_nothing_per_request_at_info() -> None:
    """The sender's requests to the forges are recorded by the outbox; httpx's own line for
    each would be one more per update of every build (its warnings stay)."""
    probe = (
        "import logging; from buildsd import logs; logs.configure('info', 'json'); "
        "print(logging.getLogger('httpx').getEffectiveLevel(), "
        "logging.getLogger('buildsd').getEffectiveLevel())"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert shown.stdout.split() == ["30", "20"], shown.stderr
