"""The logs stream extension: Server-Sent Events whose id is the cursor, resumable."""

from __future__ import annotations

import json

from tests.api.flows import base, build, failure
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for


def parse(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append(fields)
    return events


def test_stream_serves_every_line_then_ends_and_resumes(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(
        world,
        build_command="for i in $(seq 1 50); do echo n$i; sleep 0.01; done",
        deploy_command="echo done",
    )
    queued = build(world, t["trigger_uuid"])
    url = base(world) + f"/builds/{queued['build_uuid']}/logs/stream"
    response = world.client.get(url, headers=world.auth)  # returns when the build has stopped
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse(response.text)
    assert events[-1]["event"] == "end"
    assert json.loads(events[-1]["data"])["build_outcome"] == "success"
    lines = [json.loads(e["data"])[1] for e in events if e.get("event") == "line"]
    assert lines == log_lines(world, queued["build_uuid"])
    assert [line for line in lines if line.startswith("n")] == [f"n{i}" for i in range(1, 51)]
    middle = next(e for e in events if e.get("data", "").endswith('"n25"]'))
    resumed = parse(
        world.client.get(url, headers={**world.auth, "Last-Event-ID": middle["id"]}).text
    )
    rest = [json.loads(e["data"])[1] for e in resumed if e.get("event") == "line"]
    assert rest == lines[lines.index("n25") + 1 :]
    by_query = parse(
        world.client.get(url, params={"cursor": middle["id"]}, headers=world.auth).text
    )
    assert by_query == resumed
    wait_for(world, queued["build_uuid"])


def test_stream_errors_and_strict_mode(runner_world, repo: Repo) -> None:
    world = runner_world()
    failure(
        world.client.get(base(world) + "/builds/nope/logs/stream", headers=world.auth), 404, 12000
    )
    failure(world.client.get(base(world) + "/builds/nope/logs/stream"), 401, 12005)
    strict = runner_world(strict=True)
    failure(
        strict.client.get(base(strict) + "/builds/nope/logs/stream", headers=strict.auth),
        404,
        12000,
    )
