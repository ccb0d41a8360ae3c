"""Deploy hooks (spec §8, D15, D16): managed by Worker name, triggered by uuid alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from buildsd import clock
from buildsd.store import deploy_hooks, triggers
from tests.api.flows import base, build_token, connection, failure, ok, trigger_body
from tests.conftest import World

NAME = "my-worker"
UNKNOWN_UUID = "6f1c9e3e-1111-4222-8333-944455556666"


def new_worker(world: World, name: str = NAME, account: str | None = None) -> str:
    """A Worker made as the admin CLI makes it; returns its tag."""
    return str(world.run(world.services.workers.create(account or world.account, name)))


def add_trigger(world: World, tag: str, **kw: Any) -> dict[str, Any]:
    body = trigger_body(connection(world), build_token(world), external_script_id=tag, **kw)
    return dict(ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth)))


def hooks_url(world: World, name: str = NAME, account: str | None = None) -> str:
    return base(world, account) + f"/workers/{name}/deploy_hooks"


def new_hook(world: World, name: str = "deploy main", branch: str = "main") -> dict[str, Any]:
    body = {"deploy_hook_name": name, "branch": branch}
    return dict(ok(world.client.post(hooks_url(world), json=body, headers=world.auth)))


def fire(world: World, hook_uuid: str, **kw: Any) -> Any:
    return world.client.post(f"/client/v4/workers/builds/deploy_hooks/{hook_uuid}", **kw)


@pytest.fixture
def tag(world: World) -> str:
    made = new_worker(world)
    add_trigger(world, made)
    return made


def test_create_get_list_update_delete(world: World, tag: str) -> None:
    created = new_hook(world)
    assert created["deploy_hook_name"] == "deploy main" and created["branch"] == "main"
    assert created["external_script_id"] == tag  # the tag, though the path names the Worker
    assert created["created_on"] == created["modified_on"]
    url = hooks_url(world) + f"/{created['deploy_hook_uuid']}"
    assert ok(world.client.get(url, headers=world.auth)) == created
    assert ok(world.client.get(hooks_url(world), headers=world.auth)) == [
        {**created, "latest_build": None}
    ]

    replaced = ok(
        world.client.put(
            url, json={"deploy_hook_name": "staging", "branch": "staging"}, headers=world.auth
        )
    )
    assert replaced["deploy_hook_uuid"] == created["deploy_hook_uuid"]
    assert (replaced["deploy_hook_name"], replaced["branch"]) == ("staging", "staging")
    assert replaced["created_on"] == created["created_on"]
    assert replaced["modified_on"] >= created["modified_on"]

    deleted = ok(world.client.delete(url, headers=world.auth))
    assert deleted == replaced  # the deleted hook, not null
    failure(world.client.get(url, headers=world.auth), 404, 12000)
    failure(world.client.delete(url, headers=world.auth), 404, 12000)
    failure(fire(world, created["deploy_hook_uuid"]), 404, 12000)
    assert ok(world.client.get(hooks_url(world), headers=world.auth)) == []


def test_names_and_branches_are_trimmed(world: World, tag: str) -> None:
    created = new_hook(world, name="  nightly ", branch=" main\n")
    assert (created["deploy_hook_name"], created["branch"]) == ("nightly", "main")


def test_list_is_in_creation_order_with_the_latest_build(world: World, tag: str) -> None:
    first, second = new_hook(world, "first"), new_hook(world, "second", "dev")
    started = ok(fire(world, first["deploy_hook_uuid"]))
    listed = ok(world.client.get(hooks_url(world), headers=world.auth))
    assert [hook["deploy_hook_name"] for hook in listed] == ["first", "second"]
    assert listed[0]["latest_build"] == {"created_on": started["created_on"]}
    assert listed[1]["latest_build"] is None
    assert second["deploy_hook_uuid"] == listed[1]["deploy_hook_uuid"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, ""),
        ({"deploy_hook_name": "x"}, ""),
        ({"branch": "main"}, ""),
        ({"deploy_hook_name": "", "branch": "main"}, "/deploy_hook_name"),
        ({"deploy_hook_name": "x" * 59, "branch": "main"}, "/deploy_hook_name"),
        ({"deploy_hook_name": "   ", "branch": "main"}, "/deploy_hook_name"),
        ({"deploy_hook_name": "x", "branch": ""}, "/branch"),
        ({"deploy_hook_name": "x", "branch": "b" * 257}, "/branch"),
        ({"deploy_hook_name": "x", "branch": 1}, "/branch"),
        ({"deploy_hook_name": "x", "branch": "main", "extra": 1}, ""),
        ([], ""),
    ],
)
def test_bad_bodies_are_12002_and_write_nothing(
    world: World, tag: str, body: Any, pointer: str
) -> None:
    error = failure(world.client.post(hooks_url(world), json=body, headers=world.auth), 400, 12002)
    if pointer:
        assert error["source"]["pointer"] == pointer
    hook = new_hook(world)
    url = hooks_url(world) + f"/{hook['deploy_hook_uuid']}"
    failure(world.client.put(url, json=body, headers=world.auth), 400, 12002)
    assert ok(world.client.get(hooks_url(world), headers=world.auth)) == [
        {**hook, "latest_build": None}
    ]


def test_not_json_is_12002(world: World, tag: str) -> None:
    response = world.client.post(hooks_url(world), content=b"{nope", headers=world.auth)
    failure(response, 400, 12002)


def test_names_are_unique_per_worker(world: World, tag: str) -> None:
    first, second = new_hook(world, "one"), new_hook(world, "two")
    body = {"deploy_hook_name": "one", "branch": "dev"}
    error = failure(world.client.post(hooks_url(world), json=body, headers=world.auth), 409, 12049)
    assert error["message"] == "Resource already exists"
    url = hooks_url(world) + f"/{second['deploy_hook_uuid']}"
    failure(world.client.put(url, json=body, headers=world.auth), 409, 12049)
    # Keeping its own name is no clash; another Worker may use the same name.
    same = {"deploy_hook_name": "one", "branch": "dev"}
    first_url = hooks_url(world) + f"/{first['deploy_hook_uuid']}"
    assert ok(world.client.put(first_url, json=same, headers=world.auth))["branch"] == "dev"
    new_worker(world, "other-worker")
    other = ok(world.client.post(hooks_url(world, "other-worker"), json=body, headers=world.auth))
    assert other["deploy_hook_name"] == "one"


def test_unknown_worker_and_hook_are_404(world: World, tag: str) -> None:
    hook = new_hook(world)
    body = {"deploy_hook_name": "x", "branch": "main"}
    for path in (hooks_url(world, "nope"), hooks_url(world, tag)):  # a tag is not a name
        failure(world.client.get(path, headers=world.auth), 404, 12000)
        failure(world.client.post(path, json=body, headers=world.auth), 404, 12000)
    missing = hooks_url(world) + f"/{UNKNOWN_UUID}"
    failure(world.client.get(missing, headers=world.auth), 404, 12000)
    failure(world.client.put(missing, json=body, headers=world.auth), 404, 12000)
    failure(world.client.delete(missing, headers=world.auth), 404, 12000)
    # A hook of another Worker of the same account is not under this Worker.
    new_worker(world, "second")
    elsewhere = hooks_url(world, "second") + f"/{hook['deploy_hook_uuid']}"
    failure(world.client.get(elsewhere, headers=world.auth), 404, 12000)
    failure(world.client.delete(elsewhere, headers=world.auth), 404, 12000)
    assert (
        ok(world.client.get(hooks_url(world), headers=world.auth))[0]["deploy_hook_uuid"]
        == (hook["deploy_hook_uuid"])
    )


def test_another_accounts_hook_is_404_and_untouched(world: World, tag: str) -> None:
    hook = new_hook(world)
    other = world.new_account()
    theirs = world.bearer(world.new_token(account=other))
    new_worker(world, NAME, account=other)  # the same name in their account
    url = hooks_url(world, account=other) + f"/{hook['deploy_hook_uuid']}"
    body = {"deploy_hook_name": "taken", "branch": "x"}
    failure(world.client.get(url, headers=theirs), 404, 12000)
    failure(world.client.put(url, json=body, headers=theirs), 404, 12000)
    failure(world.client.delete(url, headers=theirs), 404, 12000)
    assert ok(world.client.get(hooks_url(world, account=other), headers=theirs)) == []
    mine = hooks_url(world) + f"/{hook['deploy_hook_uuid']}"
    assert ok(world.client.get(mine, headers=world.auth)) == hook


def test_auth_failures(world: World, tag: str) -> None:
    hook = new_hook(world)
    url = hooks_url(world) + f"/{hook['deploy_hook_uuid']}"
    body = {"deploy_hook_name": "x", "branch": "main"}
    reader = world.bearer(world.new_token("Workers CI Read"))
    stranger = world.bearer(world.new_token(account=world.new_account()))
    reads = [("GET", hooks_url(world)), ("GET", url)]
    writes = [("POST", hooks_url(world)), ("PUT", url), ("DELETE", url)]
    for method, path in reads + writes:
        kw: dict[str, Any] = {"json": body} if method in ("POST", "PUT") else {}
        failure(world.client.request(method, path, **kw), 401, 12005)
        failure(
            world.client.request(method, path, headers=world.bearer("x" * 40), **kw), 401, 12006
        )
        failure(world.client.request(method, path, headers=stranger, **kw), 403, 10000)
        answer = world.client.request(method, path, headers=reader, **kw)
        if (method, path) in writes:
            failure(answer, 403, 10000)
        else:
            ok(answer)
    assert ok(world.client.get(url, headers=world.auth)) == hook


# --- triggering --------------------------------------------------------------------------------


def test_trigger_needs_no_credentials_and_starts_an_api_build(world: World, tag: str) -> None:
    hook = new_hook(world)
    started = ok(fire(world, hook["deploy_hook_uuid"]))
    assert started["status"] == "queued" and started["already_exists"] is False
    build = ok(
        world.client.get(base(world) + f"/builds/{started['build_uuid']}", headers=world.auth)
    )
    assert build["created_on"] == started["created_on"]
    assert build["deploy_hook"] == {"deploy_hook_name": "deploy main"}
    meta = build["build_trigger_metadata"]
    assert (meta["build_trigger_source"], meta["branch"]) == ("api", "main")


def test_a_queued_build_of_the_branch_is_returned_as_it_is(world: World, tag: str) -> None:
    hook = new_hook(world)
    first = ok(fire(world, hook["deploy_hook_uuid"]))
    # Credentials, even wrong ones, change nothing: the uuid is the secret.
    for headers in ({}, world.auth, world.bearer("x" * 40)):
        again = ok(fire(world, hook["deploy_hook_uuid"].upper(), headers=headers))
        assert again == {**first, "already_exists": True}
    listed = world.client.get(base(world) + f"/workers/{tag}/builds", headers=world.auth)
    assert len(listed.json()["result"]) == 1
    # Once that build leaves the queue, the next call starts another.
    world.client.put(base(world) + f"/builds/{first['build_uuid']}/cancel", headers=world.auth)
    assert ok(fire(world, hook["deploy_hook_uuid"]))["build_uuid"] != first["build_uuid"]


def test_the_trigger_that_builds_the_branch_is_chosen(world: World) -> None:
    tag = new_worker(world)
    production = add_trigger(world, tag)
    previews = add_trigger(
        world, tag, trigger_name="Previews", branch_includes=["*"], branch_excludes=["main"]
    )
    cases = [("main", production), ("feature/x", previews)]
    for branch, expected in cases:
        hook = new_hook(world, f"hook {branch}", branch)
        started = ok(fire(world, hook["deploy_hook_uuid"]))
        build = ok(
            world.client.get(base(world) + f"/builds/{started['build_uuid']}", headers=world.auth)
        )
        assert build["trigger"]["trigger_uuid"] == expected["trigger_uuid"], branch


def test_no_matching_trigger_falls_back_to_the_oldest(world: World) -> None:
    tag = new_worker(world)
    oldest = add_trigger(world, tag, branch_includes=["release"])
    add_trigger(world, tag, trigger_name="second", branch_includes=["dev"])
    hook = new_hook(world, branch="main")
    started = ok(fire(world, hook["deploy_hook_uuid"]))
    build = ok(
        world.client.get(base(world) + f"/builds/{started['build_uuid']}", headers=world.auth)
    )
    assert build["trigger"]["trigger_uuid"] == oldest["trigger_uuid"]


def test_trigger_unknown_hook_or_worker_without_trigger_is_404(world: World) -> None:
    failure(fire(world, UNKNOWN_UUID), 404, 12000)
    failure(fire(world, "not-a-uuid"), 404, 12000)
    tag = new_worker(world)
    hook = new_hook(world)
    failure(fire(world, hook["deploy_hook_uuid"]), 404, 12000)  # no trigger yet
    made = add_trigger(world, tag)
    ok(fire(world, hook["deploy_hook_uuid"]))
    world.client.delete(base(world) + f"/triggers/{made['trigger_uuid']}", headers=world.auth)
    failure(fire(world, hook["deploy_hook_uuid"]), 404, 12000)  # only a deleted trigger


def test_deleting_a_hook_keeps_its_builds_named(world: World, tag: str) -> None:
    hook = new_hook(world)
    started = ok(fire(world, hook["deploy_hook_uuid"]))
    world.client.delete(hooks_url(world) + f"/{hook['deploy_hook_uuid']}", headers=world.auth)
    build = ok(
        world.client.get(base(world) + f"/builds/{started['build_uuid']}", headers=world.auth)
    )
    assert build["deploy_hook"] == {"deploy_hook_name": "deploy main"}


def simulate_hook_builds(world: World, hook_uuid: str, count: int, **sql: str) -> None:
    """`count` hook builds of another branch, as if the hook had started them just now."""

    async def queue() -> None:
        async with world.services.db.transaction() as conn:
            hook = await deploy_hooks.get_any(conn, hook_uuid)
            (trigger,) = await triggers.list_by_worker(
                conn, hook["account_id"], hook["external_script_id"]
            )
            for _ in range(count):
                await world.services.builds.queue(
                    conn, trigger, source="api", branch="elsewhere", deploy_hook=hook
                )
            for statement in sql.values():
                await conn.run(statement)

    world.run(queue())


def test_ten_hook_builds_a_minute_per_worker(world: World, tag: str) -> None:
    hook = new_hook(world)
    simulate_hook_builds(world, hook["deploy_hook_uuid"], 10)
    response = fire(world, hook["deploy_hook_uuid"])
    error = failure(response, 429, 12051)
    assert error["message"] == "Rate limit exceeded"
    assert response.headers["retry-after"] == "60"
    listed = world.client.get(base(world) + f"/workers/{tag}/builds", headers=world.auth)
    assert listed.json()["result_info"]["total_count"] == 10  # nothing was started
    # Builds older than the minute no longer count.
    two_minutes_ago = clock.format_epoch_ms(int(time.time() * 1000) - 120_000)
    simulate_hook_builds(
        world,
        hook["deploy_hook_uuid"],
        0,
        # (build_json = NULL: the stored JSON no longer holds; the list renders it instead.)
        age=f"UPDATE builds SET created_on = '{two_minutes_ago}', build_json = NULL",
    )
    assert ok(fire(world, hook["deploy_hook_uuid"]))["already_exists"] is False


def test_a_hundred_hook_builds_a_minute_per_account(world: World, tag: str) -> None:
    hook = new_hook(world)
    # 100 recent hook builds of the account, none of them of this Worker.
    simulate_hook_builds(
        world,
        hook["deploy_hook_uuid"],
        100,
        move="UPDATE builds SET build_json = NULL, external_script_id = '" + "0" * 32 + "'",
        recount="UPDATE worker_build_counts SET build_count = (SELECT COUNT(*) FROM builds b "
        "WHERE b.account_id = worker_build_counts.account_id "
        "AND b.external_script_id = worker_build_counts.external_script_id)",
    )
    failure(fire(world, hook["deploy_hook_uuid"]), 429, 12051)
    simulate_hook_builds(
        world,
        hook["deploy_hook_uuid"],
        0,
        one_less="DELETE FROM builds WHERE build_uuid = (SELECT MIN(build_uuid) FROM builds)",
    )
    assert ok(fire(world, hook["deploy_hook_uuid"]))["status"] == "queued"


def warm_up(world: World, connections: int = 5) -> None:
    """Open that many pooled connections (PostgreSQL), so the calls that follow run at once."""

    async def hold() -> None:
        async with world.services.db.connection() as conn:
            await conn.one("SELECT 1")
            await asyncio.sleep(0.2)

    async def all_at_once() -> None:
        await asyncio.gather(*(hold() for _ in range(connections)))

    world.run(all_at_once())


def test_concurrent_calls_start_one_build(world: World, tag: str) -> None:
    hook = new_hook(world)

    async def together() -> list[Any]:
        calls = [world.services.deploy_hooks.trigger(hook["deploy_hook_uuid"]) for _ in range(5)]
        return list(await asyncio.gather(*calls))

    warm_up(world)
    answers = world.run(together())
    assert len({answer.build_uuid for answer in answers}) == 1
    assert sorted(answer.already_exists for answer in answers) == [False, True, True, True, True]
