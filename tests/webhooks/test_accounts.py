"""Several accounts on one server (D21, D22): each account's own webhook URL and secret, matching
inside grants only, and replays under a new delivery id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from buildsd.services.webhooks import Webhooks
from buildsd.store import webhook_deliveries
from tests.api.flows import base, build_token, connection, failure, ok
from tests.conftest import KNOWN_SECRETS, World
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    deliver_github,
    deliveries,
    idle,
    read,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import (
    REPO_ID,
    body_of,
    github_commit,
    github_headers,
    github_pull_request,
    github_push,
    gitlab_commit,
    gitlab_headers,
    gitlab_push,
)

THEIRS = "b2" * 16  # account B's Worker


def secret_of(world: World, account: str, provider: str = "github") -> str:
    """The account's webhook secret, as `buildsd webhooks secret` makes it."""
    secret = str(world.run(world.services.webhook_secrets.create(account, provider)))
    KNOWN_SECRETS.add(secret)  # never in a response or a log line
    return secret


def tenant(world: World, provider_type: str = "github") -> World:
    """Account B beside world's A: granted the payloads' owner, with a Workers CI Write token."""
    other = world.new_account("b")
    world.grant(other, provider_type=provider_type)
    return World(world.client, world.services, other, world.new_token(account=other))


def deliver_to(
    world: World, account: str, secret: str, payload: Any, *, delivery: str | None = None
) -> httpx.Response:
    body = body_of(payload)
    headers = github_headers(body, delivery=delivery, secret=secret)
    return world.client.post(f"/webhooks/github/{account}", content=body, headers=headers)


@pytest.fixture
def two(world: World) -> World:
    """Accounts A (world) and B, both granted the payloads' owner and connected to its
    repository, each with a trigger; returns B."""
    world.grant()
    b = tenant(world)
    add_trigger(world, connect(world))
    add_trigger(b, connect(b), THEIRS)
    return b


def test_an_accounts_own_secret_builds_in_that_account_only(world: World, two: World) -> None:
    secret = secret_of(world, world.account)
    ack = accepted(deliver_to(world, world.account, secret, github_push()))
    settle(world)
    assert len(worker_builds(world)) == 1
    assert worker_builds(two, THEIRS) == []  # B connected the same repository: not its push
    assert [d["delivery_uuid"] for d in deliveries(world)] == [ack["delivery_uuid"]]
    assert deliveries(two) == []  # nor its commit message or author
    [row] = read(world, "SELECT secret_account_id FROM webhook_deliveries")
    assert row == {"secret_account_id": world.account}


def test_another_accounts_secret_is_refused(world: World, two: World) -> None:
    mine = secret_of(world, world.account)
    secret_of(world, two.account)
    error = failure(deliver_to(world, two.account, mine, github_push()), 401, 13001)
    assert error["error_chain"][0]["message"] == "X-Hub-Signature-256 does not match the body"
    # The global secret does not open an account's URL either.
    body = body_of(github_push())
    global_signed = world.client.post(
        f"/webhooks/github/{two.account}", content=body, headers=github_headers(body)
    )
    failure(global_signed, 401, 13001)
    assert read(world, "SELECT delivery_uuid FROM webhook_deliveries") == []
    assert worker_builds(world) == [] and worker_builds(two, THEIRS) == []


def test_an_account_without_a_secret_is_told_how_to_make_one(world: World) -> None:
    answers = []
    for account in (world.account, "0" * 32, "not-an-account", "%00", "x" * 5000):
        error = failure(deliver_to(world, account, "whatever", github_push()), 503, 13002)
        assert "buildsd webhooks secret --account ACCOUNT_ID --provider github" in error["message"]
        answers.append(error)
    # An account that exists and one that does not get the same answer: nothing to probe.
    assert all(answer == answers[0] for answer in answers)
    # A secret for one provider opens no other provider's URL.
    secret_of(world, world.account)
    url = f"/webhooks/gitlab/{world.account}"
    body = body_of(gitlab_push())
    failure(world.client.post(url, content=body, headers=gitlab_headers()), 503, 13002)
    assert read(world, "SELECT delivery_uuid FROM webhook_deliveries") == []


def test_an_unsigned_delivery_is_told_where_its_secret_comes_from(world: World) -> None:
    secret_of(world, world.account)
    secret_of(world, world.account, "gitlab")
    body = body_of(github_push())
    unsigned = github_headers(body)
    del unsigned["X-Hub-Signature-256"]
    tokenless = gitlab_headers()
    del tokenless["X-Gitlab-Token"]
    cases = [
        (
            f"/webhooks/github/{world.account}",
            unsigned,
            "no X-Hub-Signature-256 header: the webhook's secret must be the one "
            "`buildsd webhooks secret --account ACCOUNT_ID --provider github` printed",
        ),
        (
            "/webhooks/github",
            unsigned,
            "no X-Hub-Signature-256 header: the webhook's secret must be the value of "
            "BUILDSD_GITHUB_WEBHOOK_SECRET",
        ),
        (
            f"/webhooks/gitlab/{world.account}",
            tokenless,
            "no X-Gitlab-Token header: the webhook's secret token must be the one "
            "`buildsd webhooks secret --account ACCOUNT_ID --provider gitlab` printed",
        ),
    ]
    for url, headers, message in cases:
        error = failure(world.client.post(url, content=body, headers=headers), 401, 13001)
        assert error["error_chain"][0]["message"] == message


def test_gitlab_per_account_token(world: World, two: World) -> None:
    world.grant(provider_type="gitlab")
    add_trigger(world, connect(world, "gitlab"), "c3" * 16)
    token = secret_of(world, world.account, "gitlab")
    body = body_of(gitlab_push())
    url = f"/webhooks/gitlab/{world.account}"
    failure(world.client.post(url, content=body, headers=gitlab_headers()), 401, 13001)
    accepted(world.client.post(url, content=body, headers=gitlab_headers(token=token)))
    settle(world)
    assert len(worker_builds(world, "c3" * 16)) == 1


def test_a_new_secret_replaces_the_old(world: World) -> None:
    add_trigger(world, connect(world))
    old = secret_of(world, world.account)
    new = secret_of(world, world.account)
    assert old != new
    failure(deliver_to(world, world.account, old, github_push()), 401, 13001)
    accepted(deliver_to(world, world.account, new, github_push()))


def test_the_global_secret_matches_inside_grants_only(world: World) -> None:
    add_trigger(world, connect(world))  # connected while A was the only account
    b = tenant(world)
    add_trigger(b, connect(b), THEIRS)
    accepted(deliver_github(world, github_push("main", [github_commit("One")])))
    settle(world)
    assert len(worker_builds(b, THEIRS)) == 1
    assert worker_builds(world) == [] and deliveries(world) == []
    world.grant()
    accepted(deliver_github(world, github_push("main", [github_commit("Two")])))
    settle(world)
    assert len(worker_builds(world)) == 1 and len(worker_builds(b, THEIRS)) == 2


def test_a_connection_claiming_a_granted_owner_gets_no_other_owners_push(world: World) -> None:
    """A, granted owner 7 (alice), connects B's repository id under alice's name: the grant
    allows that connection, but pushes of the repository name their real owner (41612145),
    whom A was not granted: through the global secret or A's own, A never sees them."""
    world.grant(owner_id="7", owner="alice")
    b = tenant(world)
    claim = connection(
        world, repo_id=str(REPO_ID), provider_account_id="7", provider_account_name="alice"
    )
    add_trigger(world, (claim, build_token(world)))
    add_trigger(b, connect(b), THEIRS)
    accepted(deliver_github(world, github_push("main", [github_commit("One")])))
    mine = secret_of(world, world.account)
    push = github_push("main", [github_commit("Two")])
    accepted(deliver_to(world, world.account, mine, push))
    settle(world)
    assert worker_builds(world) == [] and deliveries(world) == []
    assert len(worker_builds(b, THEIRS)) == 1


def test_a_gitlab_connection_claiming_a_granted_namespace_gets_no_other_namespaces_push(
    world: World,
) -> None:
    """GitLab sends no namespace id, so the payload's namespace path is the owner: A, granted
    gitlab namespace alice (id 7), connects B's project id under alice; pushes of that project
    name octo-org, B's namespace, and reach B only (through the global token or A's own)."""
    world.grant(owner_id="7", owner="alice", provider_type="gitlab")
    b = tenant(world, provider_type="gitlab")
    claim = connection(
        world,
        repo_id=str(REPO_ID),
        provider_type="gitlab",
        provider_account_id="7",
        provider_account_name="alice",
    )
    add_trigger(world, (claim, build_token(world)))
    add_trigger(b, connect(b, "gitlab"), THEIRS)
    mine = secret_of(world, world.account, "gitlab")
    url = f"/webhooks/gitlab/{world.account}"
    first = body_of(gitlab_push("main", [gitlab_commit("One")]))
    accepted(world.client.post("/webhooks/gitlab", content=first, headers=gitlab_headers()))
    second = body_of(gitlab_push("main", [gitlab_commit("Two")]))
    accepted(world.client.post(url, content=second, headers=gitlab_headers(token=mine)))
    settle(world)
    assert worker_builds(world) == [] and deliveries(world) == []
    assert len(worker_builds(b, THEIRS)) == 1  # the global token's; A's own URL is A's alone
    # The same project under alice's namespace (any case) is inside A's grant: it builds.
    push = gitlab_push("main", [gitlab_commit("Three")])
    push["project"]["path_with_namespace"] = "Alice/my-worker"
    accepted(world.client.post(url, content=body_of(push), headers=gitlab_headers(token=mine)))
    settle(world)
    assert len(worker_builds(world)) == 1


@pytest.fixture
def held(hooks: Callable[..., World], monkeypatch: pytest.MonkeyPatch) -> World:
    """A world whose deliveries wait, stored, until settle() matches them."""
    monkeypatch.setattr(Webhooks, "run", idle)
    return hooks()


def test_a_grant_revoked_before_matching_starts_nothing(held: World) -> None:
    world = held
    octo_org = world.grant()
    b = tenant(world)
    add_trigger(world, connect(world))
    add_trigger(b, connect(b), THEIRS)
    mine = secret_of(world, world.account)
    accepted(deliver_to(world, world.account, mine, github_push("main", [github_commit("One")])))
    accepted(deliver_github(world, github_push("main", [github_commit("Two")])))
    assert world.run(world.services.grants.revoke(octo_org)) == 1  # A's connection with it
    settle(world)
    assert worker_builds(world) == [] and deliveries(world) == []
    assert len(worker_builds(b, THEIRS)) == 1  # B's grant is untouched: the global push builds
    pending = "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE processed_on IS NULL"
    assert read(world, pending) == [{"n": 0}]


def test_grants_are_read_when_a_delivery_is_matched_not_when_it_was_received(
    held: World,
) -> None:
    """A connection that outlives a revoked grant (another grant covers the connection as it
    claims itself) still gets no push the revoked grant alone covered."""
    world = held
    world.new_account("b")
    octo_org = world.grant()
    world.grant(owner_id="7", owner="alice")
    claim = connection(
        world, repo_id=str(REPO_ID), provider_account_id="7", provider_account_name="alice"
    )
    add_trigger(world, (claim, build_token(world)))
    mine = secret_of(world, world.account)
    accepted(deliver_to(world, world.account, mine, github_push("main", [github_commit("One")])))
    settle(world)
    assert len(worker_builds(world)) == 1  # octo-org's grant covers the repository pushed
    accepted(deliver_to(world, world.account, mine, github_push("main", [github_commit("Two")])))
    assert world.run(world.services.grants.revoke(octo_org)) == 0  # alice's grant keeps it
    settle(world)
    assert len(worker_builds(world)) == 1
    assert len(deliveries(world)) == 1


def test_a_replay_after_the_grant_is_revoked_builds_nothing(world: World) -> None:
    """Replay matches against the account's current triggers, inside its current grants."""
    mine = world.grant()
    b = tenant(world)
    add_trigger(world, connect(world))
    add_trigger(b, connect(b), THEIRS)
    ack = accepted(deliver_github(world, github_push()))
    settle(world)
    assert len(worker_builds(world)) == 1 and len(worker_builds(b, THEIRS)) == 1
    assert world.run(world.services.grants.revoke(mine)) == 1
    url = base(world) + f"/webhook_deliveries/{ack['delivery_uuid']}/replay"
    replayed = ok(world.client.post(url, headers=world.auth))
    assert replayed["delivery_uuid"] == ack["delivery_uuid"] and replayed["decisions"] == []
    assert deliveries(world)[0]["decisions"] == []
    assert len(worker_builds(world)) == 1 and len(worker_builds(b, THEIRS)) == 1


def test_replays_under_a_new_delivery_id_build_once(world: World) -> None:
    add_trigger(world, connect(world))
    push = github_push()
    first = accepted(deliver_github(world, push))
    replay = accepted(deliver_github(world, push), "duplicate")
    assert replay["delivery_id"] != first["delivery_id"]
    assert replay["reason"] == (
        f"replay of {first['delivery_uuid']} (same repository, branch, commit and event "
        "within 600 s): started nothing"
    )
    settle(world)
    assert len(worker_builds(world)) == 1
    # The same commit on another branch, or as a pull request, is no replay.
    accepted(deliver_github(world, github_push("feature", [push["commits"][0]])))
    accepted(deliver_github(world, github_pull_request(sha=push["after"]), "pull_request"))
    # A pull request reopened at the same commit is its own event.
    accepted(
        deliver_github(world, github_pull_request("reopened", sha=push["after"]), "pull_request")
    )
    # A redelivery (the same id) is still a redelivery.
    again = deliver_github(world, push, delivery=first["delivery_id"])
    assert accepted(again, "duplicate")["reason"].startswith("redelivery of")


def test_outside_the_window_a_replay_builds_again(world: World) -> None:
    add_trigger(world, connect(world))
    push = github_push()
    accepted(deliver_github(world, push))
    settle(world)

    async def age(seconds: int) -> None:
        async with world.services.db.transaction() as conn:
            await conn.run(
                "UPDATE webhook_deliveries SET received_on = :t",
                {"t": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - seconds))},
            )

    world.run(age(590))  # whole seconds, so a margin: 590 to 591 s ago
    accepted(deliver_github(world, push), "duplicate")
    world.run(age(610))
    accepted(deliver_github(world, push))
    settle(world)
    assert len(worker_builds(world)) == 2


def test_a_window_of_zero_turns_replay_dedupe_off(hooks: Callable[..., World]) -> None:
    world = hooks(webhook_replay_window_seconds=0)
    add_trigger(world, connect(world))
    push = github_push()
    accepted(deliver_github(world, push))
    accepted(deliver_github(world, push))
    settle(world)
    assert len(worker_builds(world)) == 2


def test_replays_are_per_secret(world: World, two: World) -> None:
    """The same push through A's URL and the global one is two webhooks' deliveries, not a
    replay; nor does one account's delivery id shadow another's."""
    secret = secret_of(world, world.account)
    push = github_push()
    accepted(deliver_to(world, world.account, secret, push, delivery="same-id"))
    accepted(deliver_github(world, push, delivery="same-id"))
    settle(world)
    assert len(worker_builds(world)) == 2 and len(worker_builds(two, THEIRS)) == 1


def test_concurrent_replays_build_once(hooks: Callable[..., World], monkeypatch) -> None:
    original = webhook_deliveries.replayed

    async def slow_replayed(conn: Any, values: dict[str, Any], since: str) -> str | None:
        found = await original(conn, values, since)
        if conn.dialect == "postgresql":  # commit late: every copy's check would run before
            await asyncio.sleep(0.05)  # any commit (SQLite has one writer: no overlap there)
        return found

    monkeypatch.setattr(Webhooks, "run", idle)
    monkeypatch.setattr(webhook_deliveries, "replayed", slow_replayed)
    world = hooks()
    add_trigger(world, connect(world))
    body = body_of(github_push())

    async def copies() -> list[Any]:
        receive = world.services.webhooks.receive
        heads = [{k.lower(): v for k, v in github_headers(body).items()} for _ in range(10)]
        return list(await asyncio.gather(*(receive("github", h, body) for h in heads)))

    acks = world.run(copies())
    assert sorted(ack.status for ack in acks).count("accepted") == 1
    settle(world)
    assert len(worker_builds(world)) == 1


def test_the_next_process_routes_a_stored_per_account_delivery(
    hooks: Callable[..., World], monkeypatch
) -> None:
    monkeypatch.setattr(Webhooks, "run", idle)  # it dies after answering, before matching
    first = hooks()
    first.grant()
    b = tenant(first)
    add_trigger(first, connect(first))
    add_trigger(b, connect(b), THEIRS)
    accepted(deliver_to(first, first.account, secret_of(first, first.account), github_push()))
    monkeypatch.undo()
    second = hooks()  # its start-up matches what is left
    deadline = time.monotonic() + 10
    while not worker_builds(second) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(worker_builds(second)) == 1
    b_now = World(second.client, second.services, b.account, b.token)
    assert worker_builds(b_now, THEIRS) == [] and deliveries(b_now) == []
