"""A check run's "Re-run" on GitHub (`check_run` / `check_suite` rerequested) retries its build,
in the account whose webhook delivered it only (issue 16)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import World
from tests.forges.conftest import SHA, queue_build, run_build, set_app, updates
from tests.forges.fakeforge import Forge
from tests.webhooks.conftest import accepted, settle
from tests.webhooks.payloads import body_of, github_headers, github_push

OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _secret(world: World, account: str) -> str:
    from tests.conftest import KNOWN_SECRETS

    secret = str(world.run(world.services.webhook_secrets.create(account, "github")))
    KNOWN_SECRETS.add(secret)
    return secret


def _deliver(
    world: World, account: str, secret: str, event: str, payload: dict[str, Any]
) -> httpx.Response:
    body = body_of(payload)
    headers = github_headers(body, event=event, secret=secret)
    return world.client.post(f"/webhooks/github/{account}", content=body, headers=headers)


def _check_run(build_uuid: str, sha: str = SHA, action: str = "rerequested", **repo: Any):
    repository = {**github_push()["repository"], **repo}
    return {
        "action": action,
        "check_run": {
            "id": 4,
            "name": "Workers Builds: my-worker",
            "external_id": build_uuid,
            "head_sha": sha,
            "status": "completed",
            "conclusion": "failure",
            "check_suite": {"id": 5, "head_branch": "main", "head_sha": sha},
        },
        "repository": repository,
        "installation": {"id": 4242},
    }


def _check_suite(sha: str = SHA) -> dict[str, Any]:
    return {
        "action": "rerequested",
        "check_suite": {"id": 5, "head_branch": "main", "head_sha": sha},
        "repository": github_push()["repository"],
        "installation": {"id": 4242},
    }


def _builds(world: World) -> list[dict[str, Any]]:
    async def rows() -> list[dict[str, Any]]:
        async with world.services.db.connection() as conn:
            found = await conn.all(
                "SELECT build_uuid, account_id, commit_hash, build_trigger_source, trigger_uuid "
                "FROM builds ORDER BY seq"
            )
            return [dict(row) for row in found]

    return list(world.run(rows()))


def _two(forge_world) -> tuple[World, World]:
    """Accounts A and B, both granted the repository's owner, each connected with a trigger."""
    a = forge_world()
    a.grant()
    other = a.new_account("b")
    a.grant(other)
    b = World(a.client, a.services, other, a.new_token(account=other))
    return a, b


def test_a_check_runs_rerun_retries_its_build(forge_world):
    a, _ = _two(forge_world)
    build_uuid = queue_build(a)
    run_build(a, "fail")
    ack = accepted(
        _deliver(a, a.account, _secret(a, a.account), "check_run", _check_run(build_uuid))
    )
    settle(a)
    builds = _builds(a)
    assert len(builds) == 2
    retried = builds[-1]
    assert retried["account_id"] == a.account and retried["commit_hash"] == SHA
    assert retried["trigger_uuid"] == builds[0]["trigger_uuid"]
    assert retried["build_trigger_source"] == "manual"  # Cloudflare's retry, served as manual
    listed = a.client.get(
        f"/client/v4/accounts/{a.account}/builds/webhook_deliveries", headers=a.auth
    ).json()["result"]
    [delivery] = [d for d in listed if d["delivery_uuid"] == ack["delivery_uuid"]]
    [decision] = delivery["decisions"]
    assert decision["decision"] == "built" and decision["rule"] == "check_run_rerequested"
    assert decision["build_uuid"] == retried["build_uuid"] and build_uuid in decision["reason"]
    # A second click is a second re-run (not taken for a replay); a redelivery is not.
    again = _check_run(build_uuid)
    body = body_of(again)
    headers = github_headers(body, event="check_run", secret=_secret(a, a.account))
    for _ in range(2):
        a.client.post(f"/webhooks/github/{a.account}", content=body, headers=headers)
    settle(a)
    assert len(_builds(a)) == 3


def test_another_tenants_delivery_naming_my_build_retries_nothing(forge_world):
    a, b = _two(forge_world)
    build_uuid = queue_build(a)
    queue_build(b, external_script_id="b2" * 16)  # B connected the same repository too
    before = _builds(a)
    b_secret = _secret(a, b.account)
    accepted(_deliver(a, b.account, b_secret, "check_run", _check_run(build_uuid)))
    accepted(_deliver(a, b.account, b_secret, "check_suite", _check_suite()))
    settle(a)
    assert _builds(a) == before  # neither A's build nor (no check runs) B's


def test_only_the_check_runs_own_repository_and_commit(forge_world):
    a, _ = _two(forge_world)
    build_uuid = queue_build(a)
    secret = _secret(a, a.account)
    before = _builds(a)
    for payload in (
        _check_run(build_uuid, id=1, full_name="octo-org/elsewhere"),  # another repository
        _check_run(build_uuid, sha=OTHER_SHA),  # not the build's commit
        _check_run("6f1c9e3e-1111-4222-8333-944455556666"),  # no such build
    ):
        accepted(_deliver(a, a.account, secret, "check_run", payload))
    for payload, why in (
        (_check_run(build_uuid, action="completed"), "check_run completed: nothing to do"),
        (_check_run("ci-42"), "a check run buildsd did not make"),
    ):
        ack = accepted(_deliver(a, a.account, secret, "check_run", payload), "ignored")
        assert ack["reason"].startswith(why)
    settle(a)
    assert _builds(a) == before


def test_a_check_suites_rerun_retries_each_workers_newest_checked_build(
    forge_world, app_forge: Forge, app_key
):
    a, _ = _two(forge_world)
    set_app(a, app_forge, app_key, installation="4242")
    first = queue_build(a)
    run_build(a, "fail")
    second = queue_build(a)  # the same Worker and commit again (e.g. retried already)
    run_build(a, "fail")
    deadline = time.monotonic() + 15
    while any(u["state"] != "delivered" for u in updates(a, first) + updates(a, second)):
        assert time.monotonic() < deadline, updates(a, second)
        time.sleep(0.05)
    assert len([s for s in app_forge.ok("POST") if s.path.endswith("/check-runs")]) == 2
    accepted(_deliver(a, a.account, _secret(a, a.account), "check_suite", _check_suite()))
    settle(a)
    builds = _builds(a)
    assert [b["build_uuid"] for b in builds[:2]] == [first, second]
    assert len(builds) == 3  # one retry: the Worker's newest build of the commit
    # No check run for another commit: nothing to re-run.
    accepted(_deliver(a, a.account, _secret(a, a.account), "check_suite", _check_suite(OTHER_SHA)))
    settle(a)
    assert len(_builds(a)) == 3
