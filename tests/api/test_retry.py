"""POST …/builds/{uuid}/retry (extension): the same branch and commit, the trigger as it is now."""

from __future__ import annotations

from tests.api.flows import TAG, base, build, failure, ok, trigger
from tests.conftest import World


def retry(world: World, build_uuid: str, headers: dict[str, str] | None = None):
    url = base(world) + f"/builds/{build_uuid}/retry"
    return world.client.post(url, headers=world.auth if headers is None else headers)


def test_retry_builds_the_same_commit_with_current_settings(world: World) -> None:
    t = trigger(world)
    first = build(world, t["trigger_uuid"], branch="main", commit_hash="a1b2c3d4e5f6")
    ok(world.client.put(base(world) + f"/builds/{first['build_uuid']}/cancel", headers=world.auth))
    patched = world.client.patch(
        base(world) + f"/triggers/{t['trigger_uuid']}",
        json={"build_command": "make all"},
        headers=world.auth,
    )
    ok(patched)
    again = ok(retry(world, first["build_uuid"]))
    assert again["build_uuid"] != first["build_uuid"]
    assert again["status"] == "queued" and again["build_outcome"] is None
    meta = again["build_trigger_metadata"]
    assert (meta["branch"], meta["commit_hash"]) == ("main", "a1b2c3d4e5f6")
    assert meta["build_trigger_source"] == "manual"  # internal `retry`, public enum (§1.2)
    assert meta["build_command"] == "make all"  # the trigger's settings now, not then
    assert again["trigger"]["trigger_uuid"] == t["trigger_uuid"]
    listed = ok(world.client.get(base(world) + f"/workers/{TAG}/builds", headers=world.auth))
    assert [b["build_uuid"] for b in listed] == [again["build_uuid"], first["build_uuid"]]
    # The first build is untouched.
    got = ok(world.client.get(base(world) + f"/builds/{first['build_uuid']}", headers=world.auth))
    assert got["build_outcome"] == "cancelled"


def test_retry_errors(world: World) -> None:
    t = trigger(world)
    queued = build(world, t["trigger_uuid"])
    failure(retry(world, "6f1c9e3e-1111-4222-8333-944455556666"), 404, 12000)
    failure(retry(world, queued["build_uuid"], {}), 401, 12005)
    reader = world.bearer(world.new_token("Workers CI Read"))
    failure(retry(world, queued["build_uuid"], reader), 403, 10000)
    # A deleted trigger's builds cannot be retried: its settings are gone.
    ok(world.client.delete(base(world) + f"/triggers/{t['trigger_uuid']}", headers=world.auth))
    failure(retry(world, queued["build_uuid"]), 404, 12000)
    listed = ok(world.client.get(base(world) + f"/workers/{TAG}/builds", headers=world.auth))
    assert len(listed) == 1


def test_retry_of_another_accounts_build_is_404(world: World) -> None:
    other = world.new_account()
    world.grant()
    theirs = world.bearer(world.new_token("Workers CI Write", account=other))
    t = trigger(world)
    mine = build(world, t["trigger_uuid"])
    url = base(world, other) + f"/builds/{mine['build_uuid']}/retry"
    failure(world.client.post(url, headers=theirs), 404, 12000)
    listed = ok(world.client.get(base(world) + f"/workers/{TAG}/builds", headers=world.auth))
    assert [b["build_uuid"] for b in listed] == [mine["build_uuid"]]


def test_retry_is_gone_in_strict_mode(make_world) -> None:
    strict = make_world(strict=True)
    url = base(strict) + "/builds/6f1c9e3e-1111-4222-8333-944455556666/retry"
    failure(strict.client.post(url, headers=strict.auth), 404, 12000)


def test_retry_service_takes_two_arguments(world: World) -> None:
    """The forge's check-run re-run calls exactly this."""
    t = trigger(world)
    first = build(world, t["trigger_uuid"], branch="dev")
    again = world.run(world.services.builds.retry(world.account, first["build_uuid"]))
    assert again.build_trigger_metadata.branch == "dev"
