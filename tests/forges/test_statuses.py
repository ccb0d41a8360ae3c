"""Statuses and comments on GitHub, GitLab and Gitea, through the outbox, against a local fake."""

from __future__ import annotations

import time
from typing import Any

from buildsd.store import builds
from tests.api.flows import base, build_token, connection_body, failure, ok, trigger_body
from tests.conftest import World
from tests.forges.conftest import FORGE_TOKEN, SHA, queue_build, run_build, set_forge, updates
from tests.forges.fakeforge import Forge

PREVIEW = "https://main-my-worker.example.workers.dev"
VERSION = "7a1d3c1e-2222-4333-8444-955566667777"


def _settled(world: World, build_uuid: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The build's forge updates once none is pending any more."""
    deadline = time.monotonic() + timeout
    while True:
        listed = updates(world, build_uuid)
        if all(u["state"] != "pending" for u in listed):
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.01)


def _open_pull_request(world: World, build_uuid: str, url: str) -> None:
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


def test_github_status_per_change_and_one_comment_edited_in_place(forge_world, forge: Forge):
    world = forge_world()
    assert set_forge(world, "github", forge.url) == "github"
    build_uuid = queue_build(world)
    _open_pull_request(world, build_uuid, "https://github.com/octo-org/my-worker/pull/7")
    run_build(world, "success", version_id=VERSION, preview_url=PREVIEW)
    forge.wait(2, method="PATCH")  # 4 statuses; the comment made, then edited twice
    seen = forge.ok()
    posted = [s for s in seen if s.path.endswith(f"/statuses/{SHA}")]
    assert [s.body["state"] for s in posted] == ["pending", "pending", "pending", "success"]
    assert all(s.path == f"/repos/octo-org/my-worker/statuses/{SHA}" for s in posted)
    assert posted[0].body["context"].startswith("Workers Builds: ")
    assert posted[-1].body["target_url"] == PREVIEW
    assert all(s.headers["authorization"] == f"Bearer {FORGE_TOKEN}" for s in seen)
    comments = [s for s in seen if "/comments" in s.path]
    assert comments[0].method == "POST" and comments[0].path.endswith("/issues/7/comments")
    assert {s.method for s in comments[1:]} == {"PATCH"}
    assert len({s.path for s in comments[1:]}) == 1  # one comment, edited
    last = comments[-1].body["body"]
    for text in (build_uuid, VERSION, PREVIEW, "Build succeeded", "Script"):
        assert text in last
    # The forge has answered the last update; the sender records that just after.
    listed = _settled(world, build_uuid)
    assert [u["status"] for u in listed] == ["queued", "initializing", "running", "stopped"]
    assert {u["state"] for u in listed} == {"delivered"} and listed[-1]["attempts"] == 1
    assert listed[-1]["build_outcome"] == "success"


def test_gitlab_status_and_merge_request_note(forge_world, forge: Forge):
    world = forge_world()
    conn = connection_body(provider_type="gitlab", provider_account_name="group")
    made = ok(world.client.put(base(world) + "/repos/connections", json=conn, headers=world.auth))
    set_forge(world, "gitlab", forge.url)
    body = trigger_body(made, build_token(world))
    trig = ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth))
    build_uuid = ok(
        world.client.post(
            base(world) + f"/triggers/{trig['trigger_uuid']}/builds",
            json={"branch": "main", "commit_hash": SHA},
            headers=world.auth,
        )
    )["build_uuid"]
    _open_pull_request(world, build_uuid, "https://gitlab.com/group/my-worker/-/merge_requests/3")
    run_build(world, "fail", preview_url=PREVIEW)
    forge.wait(4 + 3)
    seen = forge.ok()
    posted = [s for s in seen if "/statuses/" in s.path]
    assert posted[0].path == f"/projects/group%2Fmy-worker/statuses/{SHA}"
    assert [s.body["state"] for s in posted] == ["pending", "running", "running", "failed"]
    notes = [s for s in seen if "/notes" in s.path]
    assert notes[0].method == "POST" and notes[0].path.endswith("/merge_requests/3/notes")
    assert {s.method for s in notes[1:]} == {"PUT"}
    assert "Build failed" in notes[-1].body["body"]
    assert all(s.headers["private-token"] == FORGE_TOKEN for s in seen)


def test_gitea_status_without_comments(forge_world, forge: Forge):
    world = forge_world()
    assert set_forge(world, "gitea", forge.url + "/api/v1") == "github"
    build_uuid = queue_build(world)
    _open_pull_request(world, build_uuid, "https://gitea.example/octo-org/my-worker/pulls/2")
    job = run_build(world, "cancelled", preview_url=PREVIEW)
    assert job.build_uuid == build_uuid
    seen = forge.wait(4)
    assert all(s.path == f"/api/v1/repos/octo-org/my-worker/statuses/{SHA}" for s in seen)
    assert [s.body["state"] for s in seen][-1] == "warning"
    assert all(s.headers["authorization"] == f"token {FORGE_TOKEN}" for s in seen)


def test_no_credential_no_updates_and_other_accounts_credential_never_used(
    forge_world, forge: Forge
):
    world = forge_world()
    other = world.new_account()
    world.grant()
    set_forge(world, "github", forge.url, account=other, token="theirs-" + FORGE_TOKEN)
    build_uuid = queue_build(world)
    run_build(world)
    assert updates(world, build_uuid) == []
    assert forge.seen == []
    # Once this account has its own, its builds use it and only it.
    set_forge(world, "github", forge.url)
    build_uuid = queue_build(world)
    run_build(world)
    seen = forge.wait(4)
    assert {s.headers["authorization"] for s in seen} == {f"Bearer {FORGE_TOKEN}"}


def test_forge_updates_of_another_accounts_build_is_not_found(forge_world, forge: Forge):
    world = forge_world()
    set_forge(world, "github", forge.url)
    build_uuid = queue_build(world)
    other = world.new_account()
    world.token = world.new_token("Workers CI Read", account=other)
    failure(
        world.client.get(
            base(world, other) + f"/builds/{build_uuid}/forge_updates", headers=world.auth
        ),
        404,
        12000,
    )
    failure(
        world.client.get(
            base(world, other) + "/builds/6f1c9e3e-1111-4222-8333-944455556666/forge_updates",
            headers=world.auth,
        ),
        404,
        12000,
    )


def test_strict_mode_has_no_forge_updates(forge_world):
    world = forge_world(strict=True)
    failure(
        world.client.get(
            base(world) + "/builds/6f1c9e3e-1111-4222-8333-944455556666/forge_updates",
            headers=world.auth,
        ),
        404,
        12000,
    )
