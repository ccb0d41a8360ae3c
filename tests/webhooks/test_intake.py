"""The intake: verified before read, stored before answered, deduplicated by delivery id."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.api.flows import failure, ok
from tests.conftest import World
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    deliver_github,
    deliver_gitlab,
    deliveries,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import (
    GITHUB_SECRET,
    body_of,
    gitea_headers,
    gitea_push,
    github_headers,
    github_pull_request,
    github_push,
    gitlab_headers,
    gitlab_push,
)


def stored(world: World) -> list[dict]:
    async def read() -> list[dict]:
        async with world.services.db.connection() as conn:
            rows = await conn.all("SELECT status, delivery_id FROM webhook_deliveries")
        return [dict(row) for row in rows]

    return list(world.run(read()))


def test_a_signed_push_is_stored_answered_and_then_builds(world: World) -> None:
    add_trigger(world, connect(world))
    ack = accepted(deliver_github(world, github_push(), delivery="72d3162e-cc78-11e3-81ab"))
    assert ack["delivery_id"] == "72d3162e-cc78-11e3-81ab" and ack["delivery_uuid"]
    assert stored(world) == [{"status": "accepted", "delivery_id": "72d3162e-cc78-11e3-81ab"}]
    settle(world)
    assert len(worker_builds(world)) == 1


def test_a_redelivery_starts_nothing(world: World) -> None:
    add_trigger(world, connect(world))
    payload = github_push()
    first = accepted(deliver_github(world, payload, delivery="d-1"))
    settle(world)
    again = accepted(deliver_github(world, payload, delivery="d-1"), status="duplicate")
    settle(world)
    assert again["reason"] == f"redelivery of {first['delivery_uuid']}: started nothing"
    assert len(worker_builds(world)) == 1
    listed = deliveries(world)
    assert [d["status"] for d in listed] == ["duplicate", "accepted"]
    assert listed[0]["decisions"] == [] and len(listed[1]["decisions"]) == 1


def test_without_a_delivery_id_the_body_hash_dedupes(world: World) -> None:
    add_trigger(world, connect(world))
    body = body_of(github_push())
    headers = github_headers(body)
    del headers["X-GitHub-Delivery"]
    first = accepted(world.client.post("/webhooks/github", content=body, headers=headers))
    assert first["delivery_id"] == "sha256:" + hashlib.sha256(body).hexdigest()
    accepted(world.client.post("/webhooks/github", content=body, headers=headers), "duplicate")
    settle(world)
    assert len(worker_builds(world)) == 1


def test_wrong_and_missing_signatures_are_refused_and_nothing_is_stored(world: World) -> None:
    add_trigger(world, connect(world))
    body = body_of(github_push())
    wrong = github_headers(body, secret="not-the-secret")
    error = failure(world.client.post("/webhooks/github", content=body, headers=wrong), 401, 13001)
    assert "does not match" in error["error_chain"][0]["message"]
    missing = github_headers(body)
    del missing["X-Hub-Signature-256"]
    error = failure(
        world.client.post("/webhooks/github", content=body, headers=missing), 401, 13001
    )
    assert "X-Hub-Signature-256" in error["error_chain"][0]["message"]
    # Signed for another body: the signature covers the exact bytes.
    tampered = github_headers(body)
    other = body.replace(b'"main"', b'"evil"')
    failure(world.client.post("/webhooks/github", content=other, headers=tampered), 401, 13001)
    # A header no constant-time compare of text could take must still be a clean 401.
    odd = {**github_headers(body), "X-Hub-Signature-256": ("sha256=é" + "0" * 63).encode("latin-1")}
    failure(world.client.post("/webhooks/github", content=body, headers=odd), 401, 13001)
    gitlab = deliver_gitlab(world, gitlab_push())
    assert gitlab.status_code == 200
    bad_token = {**gitlab_headers(), "X-Gitlab-Token": "wrong"}
    raw = body_of(gitlab_push())
    failure(world.client.post("/webhooks/gitlab", content=raw, headers=bad_token), 401, 13001)
    no_token = gitlab_headers()
    del no_token["X-Gitlab-Token"]
    failure(world.client.post("/webhooks/gitlab", content=raw, headers=no_token), 401, 13001)
    settle(world)
    assert [row["status"] for row in stored(world)] == ["accepted"]  # the one good GitLab push
    assert worker_builds(world) == []  # the trigger is on a github connection


def test_refusals_are_logged_without_the_secret(world: World, caplog) -> None:
    body = body_of(github_push())
    failure(
        world.client.post(
            "/webhooks/github", content=body, headers=github_headers(body, secret="x")
        ),
        401,
        13001,
    )
    assert "refused (github)" in caplog.text


def test_no_secret_configured_refuses_every_delivery_and_says_why(make_world) -> None:
    world = make_world()
    body = body_of(github_push())
    error = failure(
        world.client.post("/webhooks/github", content=body, headers=github_headers(body)),
        503,
        13002,
    )
    assert "BUILDSD_GITHUB_WEBHOOK_SECRET" in error["message"]
    error = failure(deliver_gitlab(world, gitlab_push()), 503, 13002)
    assert "BUILDSD_GITLAB_WEBHOOK_TOKEN" in error["message"]
    assert stored(world) == []


def test_gitea_signs_without_a_prefix(world: World) -> None:
    add_trigger(world, connect(world))
    body = body_of(gitea_push())
    ack = accepted(world.client.post("/webhooks/github", content=body, headers=gitea_headers(body)))
    wrong = gitea_headers(body, secret="nope")
    failure(world.client.post("/webhooks/github", content=body, headers=wrong), 401, 13001)
    settle(world)
    [build] = worker_builds(world)
    assert build["build_trigger_metadata"]["author"] == "Ada Lovelace"
    assert ack["delivery_id"] != ""


def test_ping_and_other_events_are_acknowledged_and_ignored(world: World) -> None:
    add_trigger(world, connect(world))
    ping = {"zen": "Design for failure.", "hook_id": 1, "repository": {"id": 562843111}}
    assert "ping" in accepted(deliver_github(world, ping, "ping"), "ignored")["reason"]
    org_ping = {"zen": "Keep it logically awesome.", "hook_id": 2, "organization": {"id": 1}}
    accepted(deliver_github(world, org_ping, "ping"), "ignored")
    issue = {"action": "opened", "issue": {"number": 1}, "repository": {"id": 562843111}}
    assert accepted(deliver_github(world, issue, "issues"), "ignored")["reason"] == (
        "issues events do not build"
    )
    accepted(deliver_gitlab(world, {"object_kind": "note"}, "Note Hook"), "ignored")
    settle(world)
    assert worker_builds(world) == []
    # Ignored deliveries of a connected repository are listed, so the account sees them.
    assert sorted(d["event"] for d in deliveries(world)) == ["issues", "ping"]


def test_tag_pushes_and_branch_deletions_do_not_build(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["*"])
    tag = accepted(deliver_github(world, github_push(ref="refs/tags/v1.0.0")), "ignored")
    assert tag["reason"] == "tag push: tags do not start builds"
    deleted = accepted(deliver_github(world, github_push("old-feature", deleted=True)), "ignored")
    assert deleted["reason"] == "branch deleted: nothing to build"
    accepted(deliver_github(world, github_push(ref="refs/notes/commits")), "ignored")
    add_trigger(world, connect(world, "gitlab"), tag="ee" * 16, branch_includes=["*"])
    accepted(deliver_gitlab(world, gitlab_push(ref="refs/tags/v1.0.0"), "Tag Push Hook"), "ignored")
    accepted(deliver_gitlab(world, gitlab_push("old", deleted=True)), "ignored")
    settle(world)
    assert worker_builds(world) == [] and worker_builds(world, "ee" * 16) == []


def test_pull_request_actions(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["*"])
    for action in ("opened", "synchronize", "reopened"):
        accepted(deliver_github(world, github_pull_request(action), "pull_request"))
    for action in ("closed", "edited", "labeled"):
        accepted(deliver_github(world, github_pull_request(action), "pull_request"), "ignored")
    fork = accepted(
        deliver_github(world, github_pull_request(fork=True), "pull_request"), "ignored"
    )
    assert "fork" in fork["reason"]
    settle(world)
    assert len(worker_builds(world)) == 3


def test_form_encoded_webhooks_are_told_to_send_json(world: World) -> None:
    body = b"payload=" + body_of(github_push())
    headers = {**github_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    error = failure(
        world.client.post("/webhooks/github", content=body, headers=headers), 400, 13003
    )
    assert "application/json" in error["error_chain"][0]["message"]


def test_routing_of_the_intake(make_world) -> None:
    world = make_world(strict=True, github_webhook_secret=GITHUB_SECRET)
    failure(world.client.get("/webhooks/github"), 405, 7001)
    failure(world.client.post("/webhooks/bitbucket", content=b"{}"), 400, 7000)
    # Strict mode removes API extensions, not the way builds start.
    body = body_of(github_push())
    signature = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={signature}"}
    assert ok(world.client.post("/webhooks/github", content=body, headers=headers))["status"]
    result = world.client.post("/webhooks/github", content=body, headers=headers).json()
    assert json.dumps(result).count("duplicate") == 1
