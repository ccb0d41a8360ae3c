"""Builds as records (spec §6, D12, D13, D18): create, read, list, latest, cancel, logs."""

from __future__ import annotations

import base64
import json
import time

import pytest

from buildsd import clock
from tests.api.flows import TAG, base, build, failure, ok, trigger
from tests.conftest import World


def test_manual_build_is_queued_and_emitted_whole(world: World) -> None:
    t = trigger(world)
    result = build(world, t["trigger_uuid"], branch="main", commit_hash="A1B2C3D4E5F6")
    assert result["status"] == "queued" and result["build_outcome"] is None
    assert result["initializing_on"] is None and result["running_on"] is None
    assert result["stopped_on"] is None and result["pull_request"] is None
    assert "deploy_hook" not in result and "preview_url" not in result
    meta = result["build_trigger_metadata"]
    assert meta["build_trigger_source"] == "manual"
    assert (meta["branch"], meta["commit_hash"]) == ("main", "a1b2c3d4e5f6")
    assert meta["commit_message"] == "" and meta["author"] == ""
    assert meta["build_token_name"] == "deploy" and meta["repo_name"] == "my-worker"
    assert meta["provider_type"] == "github" and meta["environment_variables"] == {}
    assert result["trigger"]["trigger_uuid"] == t["trigger_uuid"]
    assert "build_token_uuid" not in result["trigger"]


@pytest.mark.parametrize(
    "body", [{}, {"branch": ""}, {"commit_hash": "not-hex"}, {"branch": 1}, {"extra": 1}, []]
)
def test_manual_build_needs_a_branch_or_a_commit(world: World, body: object) -> None:
    t = trigger(world)
    url = base(world) + f"/triggers/{t['trigger_uuid']}/builds"
    failure(world.client.post(url, json=body, headers=world.auth), 400, 12002)
    listed = world.client.get(base(world) + f"/workers/{TAG}/builds", headers=world.auth)
    assert listed.json()["result"] == []


def test_commit_alone_and_unknown_trigger(world: World) -> None:
    t = trigger(world)
    only_commit = build(world, t["trigger_uuid"], commit_hash="abcdef1")
    assert only_commit["build_trigger_metadata"]["branch"] == ""
    failure(
        world.client.post(
            base(world) + "/triggers/nope/builds", json={"branch": "main"}, headers=world.auth
        ),
        404,
        12000,
    )


def test_get_list_newest_first_with_next_page(world: World) -> None:
    t = trigger(world)
    made = []
    for i in range(3):
        made.append(build(world, t["trigger_uuid"], branch=f"b{i}"))
    got = ok(world.client.get(base(world) + f"/builds/{made[0]['build_uuid']}", headers=world.auth))
    assert got == made[0]
    page = world.client.get(
        base(world) + f"/workers/{TAG}/builds", params={"per_page": 2}, headers=world.auth
    ).json()
    assert [b["build_uuid"] for b in page["result"]] == [
        made[2]["build_uuid"],
        made[1]["build_uuid"],
    ]
    assert page["result_info"] == {
        "page": 1,
        "per_page": 2,
        "count": 2,
        "total_count": 3,
        "total_pages": 2,
        "next_page": True,
    }
    empty = world.client.get(base(world) + f"/workers/{'0' * 32}/builds", headers=world.auth)
    assert empty.json()["result"] == [] and empty.json()["result_info"]["next_page"] is False
    failure(
        world.client.get(
            base(world) + f"/workers/{TAG}/builds", params={"per_page": 500}, headers=world.auth
        ),
        400,
        12013,
    )


def test_builds_of_one_millisecond_list_in_the_order_they_were_made(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """created_on ties break by the Worker's build number, not by the (random) uuid."""
    t = trigger(world)
    monkeypatch.setattr(clock, "now", lambda: "2026-01-02T03:04:05.678Z")
    made = [build(world, t["trigger_uuid"], branch=f"b{i}")["build_uuid"] for i in range(12)]
    page = world.client.get(base(world) + f"/workers/{TAG}/builds", headers=world.auth).json()
    assert [b["build_uuid"] for b in page["result"]] == made[::-1]
    latest = ok(
        world.client.get(
            base(world) + "/builds/latest", params={"external_script_ids": TAG}, headers=world.auth
        )
    )
    assert latest["builds"][TAG]["build_uuid"] == made[-1]


def test_latest_by_scripts(world: World) -> None:
    t = trigger(world)
    build(world, t["trigger_uuid"], branch="old")
    newest = build(world, t["trigger_uuid"], branch="new")
    url = base(world) + "/builds/latest"
    other = "0" * 32
    result = ok(
        world.client.get(url, params={"external_script_ids": f"{TAG},{other}"}, headers=world.auth)
    )
    assert list(result["builds"]) == [TAG]
    assert result["builds"][TAG]["build_uuid"] == newest["build_uuid"]
    failure(world.client.get(url, headers=world.auth), 400, 12013)
    many = ",".join(f"{i:032x}" for i in range(21))
    failure(
        world.client.get(url, params={"external_script_ids": many}, headers=world.auth), 400, 12013
    )


def test_builds_by_version_ids(world: World) -> None:
    trigger(world)
    url = base(world) + "/builds"
    version = "1b2c3d4e-1111-4222-8333-944455556666"
    assert ok(world.client.get(url, params={"version_ids": version}, headers=world.auth)) == {
        "builds": {}
    }
    failure(world.client.get(url, headers=world.auth), 400, 12013)


def test_cancel_is_idempotent(world: World) -> None:
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])
    url = base(world) + f"/builds/{queued['build_uuid']}/cancel"
    first = ok(world.client.put(url, headers=world.auth))
    assert first["build_uuid"] == queued["build_uuid"]
    assert first["build_outcome"] == "cancelled" and first["stopped_on"]
    assert ok(world.client.put(url, headers=world.auth)) == first
    got = ok(world.client.get(base(world) + f"/builds/{queued['build_uuid']}", headers=world.auth))
    assert got["status"] == "stopped" and got["stopped_on"] == first["stopped_on"]
    failure(world.client.put(base(world) + "/builds/nope/cancel", headers=world.auth), 404, 12000)


def test_logs_shape_and_cursor(world: World) -> None:
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])
    url = base(world) + f"/builds/{queued['build_uuid']}/logs"
    empty = ok(world.client.get(url, headers=world.auth))
    assert empty["lines"] == [] and empty["truncated"] is False and empty["events"] == []
    assert "=" not in empty["cursor"]
    again = ok(world.client.get(url, params={"cursor": empty["cursor"]}, headers=world.auth))
    assert again["lines"] == [] and again["cursor"] == empty["cursor"]
    failure(world.client.get(url, params={"cursor": "%%%"}, headers=world.auth), 400, 12013)
    failure(world.client.get(base(world) + "/builds/nope/logs", headers=world.auth), 404, 12000)


@pytest.mark.parametrize("line", [2**63, 2**64, 10**30, -1])
def test_logs_cursor_out_of_range(world: World, line: int) -> None:
    """A cursor is {"line": N}: one past a 64-bit line number is a bad cursor, not a 500."""
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])
    raw = base64.urlsafe_b64encode(json.dumps({"line": line}).encode()).rstrip(b"=").decode()
    url = base(world) + f"/builds/{queued['build_uuid']}/logs"
    error = failure(world.client.get(url, params={"cursor": raw}, headers=world.auth), 400, 12013)
    assert error["source"] == {"pointer": "/cursor"}
    stream = world.client.get(url + "/stream", headers={**world.auth, "Last-Event-ID": raw})
    failure(stream, 400, 12013)
    top = base64.urlsafe_b64encode(json.dumps({"line": 2**63 - 1}).encode()).rstrip(b"=")
    page = ok(world.client.get(url, params={"cursor": top.decode()}, headers=world.auth))
    assert page["lines"] == [] and page["truncated"] is False


def test_logs_page_through_lines(world: World) -> None:
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])

    async def write_lines() -> None:
        async with world.services.db.transaction() as conn:
            for seq in range(1, 1502):
                await conn.run(
                    "INSERT INTO build_log_lines (build_uuid, seq, ts, line) "
                    "VALUES (:b, :s, :t, :l)",
                    {"b": queued["build_uuid"], "s": seq, "t": 1700000000000 + seq, "l": f"L{seq}"},
                )

    world.run(write_lines())
    url = base(world) + f"/builds/{queued['build_uuid']}/logs"
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"cursor": cursor} if cursor else {}
        page = ok(world.client.get(url, params=params, headers=world.auth))
        seen += [text for _, text in page["lines"]]
        cursor = page["cursor"]
        if not page["truncated"]:
            break
    assert seen == [f"L{i}" for i in range(1, 1502)]
    assert page["lines"][0][0] > 1_000_000_000_000  # epoch milliseconds
    assert ok(world.client.get(url, params={"cursor": cursor}, headers=world.auth))["lines"] == []


def test_account_limits(make_world) -> None:
    world = make_world()
    result = ok(world.client.get(base(world) + "/account/limits", headers=world.auth))
    assert result["has_reached_build_minutes_limit"] is False
    assert result["build_minutes_refresh_on"].endswith("T00:00:00.000Z")
    limited = make_world(build_minutes_limit=1)
    t = trigger(limited)
    queued = build(limited, t["trigger_uuid"])

    two_minutes_ago = clock.format_epoch_ms(int(time.time() * 1000) - 120_000)

    async def running_for_two_minutes() -> None:
        async with limited.services.db.connection() as conn:
            await conn.run(
                "UPDATE builds SET status = 'running', running_on = :t", {"t": two_minutes_ago}
            )

    limited.run(running_for_two_minutes())
    # Cancelling a running build counts the minutes it ran.
    ok(
        limited.client.put(
            base(limited) + f"/builds/{queued['build_uuid']}/cancel", headers=limited.auth
        )
    )
    result = ok(limited.client.get(base(limited) + "/account/limits", headers=limited.auth))
    assert result["has_reached_build_minutes_limit"] is True


def test_another_accounts_build_is_404(world: World) -> None:
    other = world.new_account()
    world.grant()
    theirs = world.new_token(account=other)
    t = trigger(world)
    mine = build(world, t["trigger_uuid"])
    for method, suffix in (("GET", ""), ("PUT", "/cancel"), ("GET", "/logs")):
        response = world.client.request(
            method,
            base(world, other) + f"/builds/{mine['build_uuid']}" + suffix,
            headers=world.bearer(theirs),
        )
        failure(response, 404, 12000)
    latest = ok(
        world.client.get(
            base(world, other) + "/builds/latest",
            params={"external_script_ids": TAG},
            headers=world.bearer(theirs),
        )
    )
    assert latest == {"builds": {}}
