"""The outbox's delivery: outages retried with backoff, order per build kept, give-ups recorded,
and a restart mid-retry losing nothing."""

from __future__ import annotations

import socket
import time

import pytest
from starlette.testclient import TestClient

from buildsd.app import create_app
from buildsd.config import Settings
from buildsd.services.outbox import backoff
from tests.conftest import World
from tests.forges.conftest import FAST, FORGE_TOKEN, queue_build, run_build, set_forge, updates
from tests.forges.fakeforge import Forge


def _wait_updates(world: World, build_uuid: str, check, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while True:
        listed = updates(world, build_uuid)
        if check(listed):
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)


def test_500s_and_a_timeout_are_retried_and_order_per_build_holds(forge_world, forge: Forge):
    world = forge_world()
    set_forge(world, "github", forge.url)
    forge.failures = [500, 502, "slow"]  # the queued status fails three times
    forge.slow = 1.0
    build_uuid = queue_build(world)
    run_build(world, "fail")
    seen = forge.wait(4)
    # The later changes waited for the first: the forge saw them in the build's order.
    assert [s.body["description"] for s in seen] == [
        "Build queued",
        "Build in progress",
        "Build in progress",
        "Build failed",
    ]
    listed = _wait_updates(world, build_uuid, lambda u: u[-1]["state"] == "delivered")
    assert [u["attempts"] for u in listed] == [4, 1, 1, 1]
    assert all(u["state"] == "delivered" and u["last_error"] is None for u in listed)


def test_a_refusing_forge_is_given_up_at_once_and_later_updates_go_on(forge_world, forge):
    world = forge_world()
    set_forge(world, "github", forge.url)
    forge.failures = [404]
    build_uuid = queue_build(world)
    run_build(world)
    forge.wait(3)
    listed = _wait_updates(world, build_uuid, lambda u: u[-1]["state"] == "delivered")
    assert listed[0]["state"] == "failed" and listed[0]["attempts"] == 1
    assert "HTTP 404" in listed[0]["last_error"]


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_connection_refused_until_given_up(forge_world):
    world = forge_world(outbox_max_attempts=3)
    set_forge(world, "gitlab", _closed_port())
    from tests.api.flows import base, build_token, connection_body, ok, trigger_body

    made = ok(
        world.client.put(
            base(world) + "/repos/connections",
            json=connection_body(provider_type="gitlab"),
            headers=world.auth,
        )
    )
    trig = ok(
        world.client.post(
            base(world) + "/triggers",
            json=trigger_body(made, build_token(world)),
            headers=world.auth,
        )
    )
    build_uuid = ok(
        world.client.post(
            base(world) + f"/triggers/{trig['trigger_uuid']}/builds",
            json={"branch": "main", "commit_hash": "abcdef12"},
            headers=world.auth,
        )
    )["build_uuid"]
    listed = _wait_updates(world, build_uuid, lambda u: u and u[0]["state"] == "failed")
    assert listed[0]["attempts"] == 3 and listed[0]["last_error"].startswith("gave up after 3")


@pytest.mark.parametrize("sender", ["inline", "process"])
def test_a_restart_mid_retry_loses_nothing(make_settings, forge_world, forge: Forge, sender):
    slow = {**FAST, "outbox_backoff_seconds": 0.5, "outbox_backoff_cap_seconds": 0.5}
    slow["sender"] = sender
    app = create_app(make_settings(**slow))
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    world = World(client=client, services=app.state.services)
    world.run(world.services.admin.bootstrap())
    set_forge(world, "github", forge.url)
    forge.failures = [503] * 50
    build_uuid = queue_build(world)
    run_build(world)
    _wait_updates(world, build_uuid, lambda u: u[0]["attempts"] >= 1 and u[0]["last_error"])
    client.__exit__(None, None, None)  # buildsd stops mid-retry
    forge.failures = []
    again = forge_world(sender=sender)  # the same database and data dir: a restart
    forge.wait(4)
    listed = _wait_updates(again, build_uuid, lambda u: u[-1]["state"] == "delivered")
    assert [u["state"] for u in listed] == ["delivered"] * 4
    descriptions = [s.body["description"] for s in forge.ok()]
    assert descriptions == [
        "Build queued",
        "Build in progress",
        "Build in progress",
        "Build succeeded",
    ]  # each once, in order


def test_backoff_grows_with_jitter_up_to_the_cap():
    settings = Settings(outbox_backoff_seconds=1.0, outbox_backoff_cap_seconds=10.0)
    for attempts, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (60, 10.0)):
        waits = [backoff(settings, attempts) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
    assert FAST["runner_slots"] == 0


def test_a_key_rotation_re_encrypts_forge_tokens(forge_world):
    from buildsd import crypto

    world = forge_world()
    set_forge(world, "gitea", "https://git.example/api/v1")
    old = crypto.Cipher(
        crypto.load_key(world.services.settings.secret_key, world.services.settings.data_path)
    )
    new = crypto.Cipher(crypto.new_key())
    assert world.run(world.services.secret_keys.rotate(old, new)) >= 1

    async def stored() -> str:
        async with world.services.db.connection() as conn:
            row = await conn.one("SELECT token FROM forge_credentials")
        return str(row["token"])

    assert new.decrypt(world.run(stored())) == FORGE_TOKEN


def test_an_update_whose_credential_is_unset_meanwhile_is_given_up(forge_world, forge):
    world = forge_world()
    set_forge(world, "github", forge.url)
    forge.failures = [500] * 1000
    build_uuid = queue_build(world)
    _wait_updates(world, build_uuid, lambda u: u and u[0]["attempts"] >= 1)
    assert world.run(world.services.outbox.unset_credential(world.account, "github"))
    listed = _wait_updates(world, build_uuid, lambda u: u[0]["state"] == "failed")
    assert listed[0]["last_error"] == "its forge or subscription is gone"


def test_unknown_forges_are_refused(forge_world):
    from buildsd.errors import InvalidRequestBody

    world = forge_world()
    for call in (
        world.services.outbox.set_credential(world.account, "bitbucket", "t", None),
        world.services.outbox.unset_credential(world.account, "bitbucket"),
    ):
        try:
            world.run(call)
        except InvalidRequestBody:
            continue
        raise AssertionError("accepted")


def test_the_sender_survives_a_failing_claim(caplog):
    import asyncio

    from buildsd.forges.sender import Sender

    class Failing:
        calls = 0

        async def claim(self, limit: int, settled: object = ()) -> list:
            self.calls += 1
            if self.calls == 1:
                raise OSError("database away")
            stopping.set()
            return []

    stopping = asyncio.Event()
    outbox = Failing()
    settings = Settings(outbox_poll_seconds=0.01)
    asyncio.run(Sender(outbox, settings).run(stopping))  # type: ignore[arg-type]
    assert outbox.calls == 2 and "claiming updates failed" in caplog.text


def test_owner_slash_repo_names_one_repository():
    from buildsd.forges.text import repository
    from buildsd.services.outbox import Delivery

    row = {"provider_account_name": "ignored", "repo_name": "octo org/my-worker"}
    assert repository(Delivery(row, "", "", "", None)) == ("octo%20org", "my-worker")


def test_a_claim_records_a_round_of_answers_delivered_and_failed_alike(forge_world, forge):
    """The answers a round of sends got are recorded by the sender's next claim: the delivered
    ones in one statement (each with the comment and check run it made), a failed one
    rescheduled with its error."""
    from buildsd.services.outbox import Outcome, Sent

    world = forge_world(outbox_poll_seconds=3600)  # the app's sender never looks again
    set_forge(world, "github", forge.url)
    made = [queue_build(world) for _ in range(3)]
    outbox = world.services.outbox
    claimed = {d.row["build_uuid"]: d for d in world.run(outbox.claim(10))}
    assert set(claimed) == set(made)
    first, second, third = (claimed[b] for b in made)
    answers = [
        Outcome(first, sent=Sent(comment_id="701", check_run_id="9001")),
        Outcome(second, error="HTTP 502"),
        Outcome(third, sent=Sent()),
    ]
    assert world.run(outbox.claim(0, answers)) == []

    [one], [two], [three] = (updates(world, b) for b in made)
    assert (one["state"], one["last_error"], one["delivered_on"] is not None) == (
        "delivered",
        None,
        True,
    )
    assert (two["state"], two["last_error"], two["attempts"]) == ("pending", "HTTP 502", 1)
    assert two["next_attempt_on"] > two["created_on"]
    assert three["state"] == "delivered"

    async def made_in_place() -> list:
        async with world.services.db.connection() as conn:
            return await conn.all(
                "SELECT comment_id, check_run_id FROM outbox WHERE id IN (:a, :b) ORDER BY id",
                {"a": one["id"], "b": three["id"]},
            )

    assert [tuple(r.values()) for r in world.run(made_in_place())] == [
        ("701", "9001"),
        (None, None),
    ]
