"""Build events to event subscriptions: Cloudflare's payload, Standard Webhooks signatures
checked by the receiver as docs/events.md tells a user to, the ledger, replay, outages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from tests.api.flows import base, failure, ok
from tests.conftest import KNOWN_SECRETS, World
from tests.forges.conftest import queue_build, run_build
from tests.forges.fakeforge import Forge, Seen


def verify(secret: str, headers: dict[str, str], raw: bytes, tolerance: int = 300) -> dict:
    """docs/events.md's check, word for word: what a receiver does with a delivery."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise ValueError("timestamp too old or too new")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for signature in headers["webhook-signature"].split():
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(raw)
    raise ValueError("no valid signature")


def subscribe(world: World, url: str, events: list[str], **body) -> dict:
    made = ok(
        world.client.post(
            base(world) + "/event_subscriptions",
            headers=world.auth,
            json={"name": "team", "url": url, "events": events, **body},
        )
    )
    KNOWN_SECRETS.add(made["secret"])
    return dict(made)


def ledger(world: World, sub: str) -> list[dict]:
    return list(
        ok(
            world.client.get(
                base(world) + f"/event_subscriptions/{sub}/deliveries", headers=world.auth
            )
        )
    )


def _wait_ledger(world: World, sub: str, check, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not check(rows := ledger(world, sub)):
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    return rows


def test_started_and_succeeded_signed_with_cloudflares_payload(forge_world, forge: Forge):
    world = forge_world()
    sub = subscribe(world, forge.url + "/hook", ["build.started", "build.succeeded"])
    assert sub["secret"].startswith("whsec_") and sub["enabled"] is True
    got = ok(
        world.client.get(base(world) + f"/event_subscriptions/{sub['id']}", headers=world.auth)
    )
    assert got["secret"] is None and got["events"] == ["build.started", "build.succeeded"]
    listed = ok(world.client.get(base(world) + "/event_subscriptions", headers=world.auth))
    assert [s["id"] for s in listed] == [sub["id"]] and listed[0]["secret"] is None
    build_uuid = queue_build(world)
    run_build(world, "success")
    seen: list[Seen] = forge.wait(2)
    events = [verify(sub["secret"], s.headers, s.raw) for s in seen]
    assert [e["type"] for e in events] == [
        "cf.workersBuilds.worker.build.started",
        "cf.workersBuilds.worker.build.succeeded",
    ]
    done = events[1]
    assert done["source"]["type"] == "workersBuilds.worker" and done["source"]["workerName"]
    assert done["payload"]["buildUuid"] == build_uuid
    assert done["payload"]["status"] == "stopped" and done["payload"]["buildOutcome"] == "success"
    assert done["payload"]["stoppedAt"] and events[0]["payload"]["stoppedAt"] is None
    assert done["payload"]["buildTriggerMetadata"]["branch"] == "main"
    assert done["payload"]["buildTriggerMetadata"]["providerType"] == "github"
    assert done["metadata"] == {
        "accountId": world.account,
        "eventSubscriptionId": sub["id"],
        "eventSchemaVersion": 1,
        "eventTimestamp": done["metadata"]["eventTimestamp"],
    }
    # A tampered body or another secret fails the receiver's check.
    for secret, raw in (
        (sub["secret"], seen[0].raw + b" "),
        ("whsec_" + base64.b64encode(b"x" * 32).decode(), seen[0].raw),
    ):
        try:
            verify(secret, seen[0].headers, raw)
        except ValueError:
            continue
        raise AssertionError("a bad signature passed")
    rows = _wait_ledger(world, sub["id"], lambda r: len(r) == 2 and r[1]["state"] == "delivered")
    assert [r["event_type"] for r in rows] == ["build.started", "build.succeeded"]
    # Replay: a new ledger entry, the same message id, delivered again.
    again = ok(
        world.client.post(
            base(world) + f"/event_subscriptions/{sub['id']}/deliveries/{rows[1]['id']}/replay",
            headers=world.auth,
        )
    )
    assert again["message_id"] == rows[1]["message_id"] and again["state"] == "pending"
    third = forge.wait(3)[2]
    assert third.headers["webhook-id"] == seen[1].headers["webhook-id"]
    assert verify(sub["secret"], third.headers, third.raw)["payload"]["buildOutcome"] == "success"


def test_only_the_events_subscribed_and_retries(forge_world, forge: Forge):
    world = forge_world()
    sub = subscribe(world, forge.url, ["build.failed", "build.canceled"])
    off = subscribe(world, forge.url + "/off", ["build.failed"], enabled=False)
    forge.failures = [500]
    queue_build(world)
    run_build(world, "fail")
    seen = forge.wait(1)
    assert [verify(sub["secret"], s.headers, s.raw)["type"] for s in seen] == [
        "cf.workersBuilds.worker.build.failed"
    ]
    rows = _wait_ledger(world, sub["id"], lambda r: r and r[0]["state"] == "delivered")
    assert rows[0]["attempts"] == 2
    assert ledger(world, off["id"]) == []
    deleted = ok(
        world.client.delete(base(world) + f"/event_subscriptions/{sub['id']}", headers=world.auth)
    )
    assert deleted["id"] == sub["id"] and deleted["secret"] is None
    failure(
        world.client.get(base(world) + f"/event_subscriptions/{sub['id']}", headers=world.auth),
        404,
        12000,
    )


def test_bad_bodies_unknown_ids_and_the_allow_list(forge_world):
    world = forge_world(event_url_allow_hosts="hooks.example.com, .team.example")
    url = base(world) + "/event_subscriptions"
    good = {"name": "n", "url": "https://hooks.example.com/x", "events": ["build.failed"]}
    for bad in (
        {**good, "url": "file:///etc/passwd"},
        {**good, "url": "gopher://x"},
        {**good, "events": ["build.exploded"]},
        {**good, "events": []},
        {**good, "surprise": 1},
        {**good, "url": "http://127.0.0.1:8700/"},
        {**good, "url": "https://evil.example/"},
        {**good, "url": "https://]x"},
        {**good, "url": "http:///x"},
    ):
        failure(world.client.post(url, json=bad, headers=world.auth), 400, 12002)
    ok(
        world.client.post(
            url, json={**good, "url": "https://ci.team.example/h"}, headers=world.auth
        )
    )
    sub = ok(world.client.post(url, json=good, headers=world.auth))
    KNOWN_SECRETS.add(sub["secret"])
    unknown = "ab" * 16
    for method, path in (
        ("GET", unknown),
        ("DELETE", unknown),
        ("GET", unknown + "/deliveries"),
        ("POST", f"{sub['id']}/deliveries/999/replay"),
        ("POST", f"{sub['id']}/deliveries/x1/replay"),
    ):
        failure(world.client.request(method, f"{url}/{path}", headers=world.auth), 404, 12000)


def test_another_accounts_build_never_reaches_this_accounts_subscription(forge_world, forge):
    world = forge_world()
    other = world.new_account()
    world.grant()
    mine = subscribe(world, forge.url, ["build.succeeded"])
    theirs_token = world.new_token("Workers CI Write", account=other)
    mine_token, world.token = world.token, theirs_token
    world.account, home = other, world.account
    world.grant(other)
    queue_build(world)
    run_build(world)
    world.account, world.token = home, mine_token
    assert ledger(world, mine["id"]) == []
    assert forge.seen == []


def test_a_subscription_disabled_meanwhile_gets_nothing_more(forge_world, forge: Forge):
    world = forge_world()
    sub = subscribe(world, forge.url, ["build.started"])
    forge.failures = [500] * 1000
    queue_build(world)
    job = world.run(world.services.runs.claim("test-runner"))
    assert world.run(world.services.runs.start_running(job))
    _wait_ledger(world, sub["id"], lambda r: r and r[0]["attempts"] >= 1)

    async def disable() -> None:
        async with world.services.db.transaction() as conn:
            await conn.run("UPDATE event_subscriptions SET enabled = :no", {"no": False})

    world.run(disable())
    rows = _wait_ledger(world, sub["id"], lambda r: r[0]["state"] == "failed")
    assert rows[0]["last_error"] == "its forge or subscription is gone"
