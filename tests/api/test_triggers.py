"""Triggers (spec §5, D17): create with defaults, partial PATCH, soft delete, list by Worker."""

from __future__ import annotations

import pytest

from tests.api.flows import (
    TAG,
    base,
    build,
    build_token,
    connection,
    connection_body,
    failure,
    ok,
    trigger,
    trigger_body,
)
from tests.conftest import World


def test_create_with_the_seven_fields_fills_the_defaults(world: World) -> None:
    conn, token = connection(world), build_token(world)
    result = ok(
        world.client.post(
            base(world) + "/triggers", json=trigger_body(conn, token), headers=world.auth
        )
    )
    assert result["root_directory"] == "/"
    assert result["branch_excludes"] == [] and result["path_excludes"] == []
    assert result["path_includes"] == ["*"]
    assert result["build_caching_enabled"] is True
    assert result["build_token_name"] == "deploy"
    assert result["build_token_uuid"] == token["build_token_uuid"]
    assert result["deleted_on"] is None
    assert result["repo_connection"] == {**conn, "grant_id": None}


def test_create_with_every_field(world: World) -> None:
    conn, token = connection(world), build_token(world)
    body = trigger_body(
        conn,
        token,
        root_directory="/apps/site",
        branch_excludes=["wip/*"],
        path_includes=["src/*"],
        path_excludes=["*.md"],
        build_caching_enabled=False,
        branch_includes=["*"],
    )
    result = ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth))
    for key in (
        "root_directory",
        "branch_excludes",
        "path_includes",
        "path_excludes",
        "build_caching_enabled",
        "branch_includes",
    ):
        assert result[key] == body[key]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"environment_variables": {}}, ""),
        ({"external_script_id": "my-worker"}, "/external_script_id"),
        ({"repo_connection_uuid": "nope"}, "/repo_connection_uuid"),
        ({"branch_includes": []}, "/branch_includes"),
        ({"branch_excludes": ["*"]}, "/branch_includes"),
        ({"branch_includes": "main"}, "/branch_includes"),
        ({"build_caching_enabled": "yes"}, "/build_caching_enabled"),
        ({"trigger_name": ""}, "/trigger_name"),
    ],
)
def test_create_refuses_bad_bodies(world: World, change: dict, pointer: str) -> None:
    body = {**trigger_body(connection(world), build_token(world)), **change}
    error = failure(
        world.client.post(base(world) + "/triggers", json=body, headers=world.auth), 400, 12002
    )
    if pointer:
        assert error["source"]["pointer"] == pointer
    assert ok(world.client.get(base(world) + f"/workers/{TAG}/triggers", headers=world.auth)) == []


@pytest.mark.parametrize(
    "missing",
    [
        "external_script_id",
        "repo_connection_uuid",
        "build_token_uuid",
        "trigger_name",
        "branch_includes",
        "build_command",
        "deploy_command",
    ],
)
def test_each_required_field(world: World, missing: str) -> None:
    body = trigger_body(connection(world), build_token(world))
    del body[missing]
    failure(world.client.post(base(world) + "/triggers", json=body, headers=world.auth), 400, 12002)


def test_create_needs_a_live_connection_and_token_of_this_account(world: World) -> None:
    conn, token = connection(world), build_token(world)
    other = world.new_account()
    world.grant(other, owner_id="1", owner="o")
    theirs = world.new_token(account=other)
    their_conn = ok(
        world.client.put(
            base(world, other) + "/repos/connections",
            headers=world.bearer(theirs),
            json={
                "provider_account_id": "1",
                "provider_account_name": "o",
                "provider_type": "github",
                "repo_id": "9",
                "repo_name": "r",
            },
        )
    )
    url = base(world) + "/triggers"
    body = trigger_body(their_conn, token)
    failure(world.client.post(url, json=body, headers=world.auth), 404, 12000)
    body = trigger_body(conn, {"build_token_uuid": "6f1c9e3e-1111-4222-8333-944455556666"})
    failure(world.client.post(url, json=body, headers=world.auth), 404, 12000)
    world.client.delete(
        base(world) + f"/repos/connections/{conn['repo_connection_uuid']}", headers=world.auth
    )
    failure(world.client.post(url, json=trigger_body(conn, token), headers=world.auth), 404, 12000)


def test_another_accounts_worker_tag_is_404_and_stays_theirs(world: World) -> None:
    """A tag belongs to the account that registered it (D16, D24): another account naming it
    gets 404 12000, as Cloudflare answers for a Worker it cannot see, never a takeover."""
    tag = str(world.run(world.services.workers.create(world.account, "my-worker")))
    ok(world.client.post(base(world) + "/triggers", json=_body(world, tag), headers=world.auth))
    other = world.new_account()
    world.grant()  # two accounts: each connects what it was granted (D21)
    world.grant(other, owner_id="41612145", owner="o")
    theirs = world.bearer(world.new_token(account=other))
    their_conn = ok(
        world.client.put(
            base(world, other) + "/repos/connections",
            headers=theirs,
            json=connection_body("9", provider_account_name="o", repo_name="r"),
        )
    )
    their_token = ok(
        world.client.post(
            base(world, other) + "/tokens",
            headers=theirs,
            json={
                "build_token_name": "t",
                "build_token_secret": "x" * 40,
                "cloudflare_token_id": "y",
            },
        )
    )
    body = trigger_body(their_conn, their_token, external_script_id=tag)
    failure(
        world.client.post(base(world, other) + "/triggers", json=body, headers=theirs), 404, 12000
    )
    # A tag nobody registered yet is theirs to register, and then it is not ours.
    fresh = "fe" * 16
    body = trigger_body(their_conn, their_token, external_script_id=fresh)
    ok(world.client.post(base(world, other) + "/triggers", json=body, headers=theirs))
    mine = _body(world, fresh)
    failure(world.client.post(base(world) + "/triggers", json=mine, headers=world.auth), 404, 12000)
    assert (
        ok(world.client.get(base(world, other) + "/triggers", headers=theirs))[0][
            "external_script_id"
        ]
        == fresh
    )
    # Ours keeps working: its build configuration's view, deploy hooks by name, a second trigger.
    ok(world.client.post(base(world) + "/triggers", json=_body(world, tag), headers=world.auth))
    assert (
        ok(world.client.get(base(world) + f"/workers/{tag}", headers=world.auth))["script_tag"]
        == tag
    )
    hook = {"deploy_hook_name": "nightly", "branch": "main"}
    hooks = base(world) + "/workers/my-worker/deploy_hooks"
    ok(world.client.post(hooks, json=hook, headers=world.auth))
    assert [
        t["external_script_id"]
        for t in ok(world.client.get(base(world) + f"/workers/{tag}/triggers", headers=world.auth))
    ] == [tag, tag]


def _body(world: World, tag: str) -> dict[str, object]:
    return trigger_body(connection(world), build_token(world), external_script_id=tag)


def test_patch_is_partial_and_tolerates_unchanged_ids(world: World) -> None:
    created = trigger(world)
    url = base(world) + f"/triggers/{created['trigger_uuid']}"
    patched = ok(
        world.client.patch(
            url, json={"build_command": "make", "branch_excludes": ["x"]}, headers=world.auth
        )
    )
    assert patched["build_command"] == "make" and patched["branch_excludes"] == ["x"]
    assert patched["deploy_command"] == created["deploy_command"]
    assert patched["modified_on"] >= created["modified_on"]
    assert patched["created_on"] == created["created_on"]
    same = {
        "external_script_id": TAG,
        "repo_connection_uuid": created["repo_connection"]["repo_connection_uuid"],
    }
    assert ok(world.client.patch(url, json=same, headers=world.auth))["build_command"] == "make"
    failure(
        world.client.patch(url, json={"external_script_id": "0" * 32}, headers=world.auth),
        400,
        12002,
    )
    for body in ({"branch_includes": []}, {"branch_excludes": ["*"]}, {"nope": 1}, []):
        failure(world.client.patch(url, json=body, headers=world.auth), 400, 12002)
    new_token = build_token(world, "second")
    changed = ok(
        world.client.patch(
            url, json={"build_token_uuid": new_token["build_token_uuid"]}, headers=world.auth
        )
    )
    assert changed["build_token_name"] == "second"
    missing_token = {"build_token_uuid": "6f1c9e3e-1111-4222-8333-944455556666"}
    failure(world.client.patch(url, json=missing_token, headers=world.auth), 404, 12000)


def test_delete_is_soft_and_cancels_unfinished_builds(world: World) -> None:
    created = trigger(world)
    queued = build(world, created["trigger_uuid"])
    url = base(world) + f"/triggers/{created['trigger_uuid']}"
    assert ok(world.client.delete(url, headers=world.auth)) is None
    failure(world.client.delete(url, headers=world.auth), 404, 12000)
    failure(world.client.patch(url, json={"trigger_name": "x"}, headers=world.auth), 404, 12000)
    assert ok(world.client.get(base(world) + f"/workers/{TAG}/triggers", headers=world.auth)) == []
    after = ok(
        world.client.get(base(world) + f"/builds/{queued['build_uuid']}", headers=world.auth)
    )
    assert (after["status"], after["build_outcome"]) == ("stopped", "cancelled")
    assert after["trigger"]["deleted_on"] is not None


def test_list_by_worker_and_a_deleted_connection(world: World) -> None:
    created = trigger(world)
    listed = ok(world.client.get(base(world) + f"/workers/{TAG}/triggers", headers=world.auth))
    assert listed == [created]
    assert (
        ok(world.client.get(base(world) + f"/workers/{'0' * 32}/triggers", headers=world.auth))
        == []
    )
    conn_uuid = created["repo_connection"]["repo_connection_uuid"]
    world.client.delete(base(world) + f"/repos/connections/{conn_uuid}", headers=world.auth)
    (still,) = ok(world.client.get(base(world) + f"/workers/{TAG}/triggers", headers=world.auth))
    assert still["repo_connection"]["deleted_on"] is not None


def test_extensions_get_and_list_and_strict_mode(make_world) -> None:
    world = make_world()
    created = trigger(world)
    url = base(world) + f"/triggers/{created['trigger_uuid']}"
    assert ok(world.client.get(url, headers=world.auth)) == created
    page = world.client.get(base(world) + "/triggers", headers=world.auth).json()
    assert page["result"] == [created] and page["result_info"]["total_count"] == 1
    strict = make_world(strict=True)
    made = trigger(strict)
    for path in (f"/triggers/{made['trigger_uuid']}", "/triggers"):
        failure(strict.client.get(base(strict) + path, headers=strict.auth), 404, 12000)


def test_purge_build_cache(world: World) -> None:
    created = trigger(world)
    cache = world.services.triggers.cache_dir(created["trigger_uuid"])
    (cache / "npm").mkdir(parents=True)
    (cache / "npm" / "blob").write_text("x")
    url = base(world) + f"/triggers/{created['trigger_uuid']}/purge_build_cache"
    assert ok(world.client.post(url, headers=world.auth)) is None
    assert not cache.exists()
    assert ok(world.client.post(url, headers=world.auth)) is None  # nothing to purge is fine
    failure(
        world.client.post(base(world) + "/triggers/nope/purge_build_cache", headers=world.auth),
        404,
        12000,
    )
