"""GET /metrics: requests by operation and status, builds by outcome, durations, queue depth."""

from __future__ import annotations

from tests.api.flows import base, build
from tests.runner.conftest import Repo, make_trigger, wait_for


def test_metrics(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="true", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    wait_for(world, queued["build_uuid"])
    world.client.get(base(world) + "/builds/nope", headers=world.auth)
    response = world.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'buildsd_http_requests_total{operation="getBuildByUuid",status="404"} 1' in text
    assert 'buildsd_builds_finished_total{outcome="success"} 1' in text
    assert "buildsd_build_duration_seconds_count 1" in text
    assert "buildsd_build_queue_wait_seconds_count 1" in text
    assert "buildsd_build_queue_depth 0" in text
