"""Grants (D21): with several accounts, an account connects only the repositories its grants
cover; the grants extension lists them (GET …/builds/grants, D7)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.flows import base, build_token, connection_body, failure, ok
from tests.conftest import World

THEIR_OWNER = {"provider_account_id": "41612145", "provider_account_name": "octo-org"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def put(world: World, body: dict[str, Any], account: str | None = None, auth=None) -> Any:
    url = base(world, account) + "/repos/connections"
    return world.client.put(url, json=body, headers=auth or world.auth)


def stored_connections(world: World) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with world.services.db.connection() as conn:
            rows = await conn.all("SELECT account_id, repo_id FROM repo_connections")
        return [dict(row) for row in rows]

    return list(world.run(read()))


@pytest.fixture
def two(world: World) -> World:
    """Account B (granted octo-org, flows.connection_body's owner) beside world's account A,
    which has no grant; returns B."""
    other = world.new_account("b")
    world.grant(other)
    token = world.new_token("Workers CI Write", account=other)
    return World(world.client, world.services, other, token)


def test_another_owners_repository_is_refused_and_nothing_is_stored(
    world: World, two: World
) -> None:
    b = two
    error = failure(put(world, connection_body()), 404, 12000)
    assert error["message"] == "Not found"
    [cause] = error["error_chain"]
    assert cause["code"] == 12000
    assert "no grant of this account covers github account 41612145 (octo-org)" in cause["message"]
    assert "buildsd grants add" in cause["message"]
    assert stored_connections(world) == []
    listed = world.client.get(base(world) + "/repos/connections", headers=world.auth)
    assert ok(listed) == []
    # The Worker build configuration connects a repository too: the same rule.
    settings = {
        "build_command": "",
        "deploy_command": "npx wrangler deploy",
        "build_token_uuid": build_token(world)["build_token_uuid"],
    }
    body = {
        "script_tag": "ab" * 16,
        "git_repository": {**connection_body(), "branch": "main"},
        "production_settings": settings,
        "previews_enabled": False,
    }
    refused = world.client.post(base(world) + "/workers", json=body, headers=world.auth)
    assert "no grant" in failure(refused, 404, 12000)["error_chain"][0]["message"]
    assert stored_connections(world) == []
    # B, granted the owner, connects it.
    ok(put(b, connection_body()))
    assert stored_connections(world) == [{"account_id": b.account, "repo_id": "562843111"}]


def test_with_a_grant_the_account_connects(world: World, two: World) -> None:
    world.grant()
    created = ok(put(world, connection_body()))
    assert created["provider_account_name"] == "octo-org"
    # Logins are case-insensitive; the same owner under another spelling is the same owner.
    ok(put(world, connection_body(provider_account_name="Octo-Org")))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"provider_account_id": "1"}, id="another-owner-id"),
        # Clone URLs are built from the names: a granted id with another's name would clone
        # that other's repository.
        pytest.param({"provider_account_name": "someone-else"}, id="another-owner-name"),
        pytest.param({"provider_type": "gitlab"}, id="another-provider"),
    ],
)
def test_a_connection_must_match_its_grant(
    world: World, two: World, change: dict[str, str]
) -> None:
    world.grant()
    failure(put(world, connection_body(**change)), 404, 12000)
    assert stored_connections(world) == []


def test_a_grant_listing_repositories_refuses_the_others(world: World, two: World) -> None:
    world.grant(repos=(("562843111", "my-worker"),))
    ok(put(world, connection_body()))
    failure(put(world, connection_body("1")), 404, 12000)  # not listed
    failure(put(world, connection_body(repo_name="other-repo")), 404, 12000)  # renamed
    assert stored_connections(world) == [{"account_id": world.account, "repo_id": "562843111"}]


def test_a_listed_repository_may_be_named_owner_slash_repo(world: World, two: World) -> None:
    """`octo-org/my-worker` is `my-worker` of octo-org (D23), so the grant listing it covers it."""
    world.grant(repos=(("562843111", "my-worker"),))
    ok(put(world, connection_body(repo_name="octo-org/my-worker")))
    failure(put(world, connection_body(repo_name="octo-org/other-repo")), 404, 12000)


def test_one_account_or_grants_all_grants_everything(make_world) -> None:
    alone = make_world()
    ok(put(alone, connection_body(provider_account_id="7", provider_account_name="anyone")))
    open_world = make_world(grants="all")
    other = open_world.new_account()
    ok(put(open_world, connection_body(provider_account_id="8", provider_account_name="x")))
    theirs = open_world.bearer(open_world.new_token(account=other))
    ok(put(open_world, connection_body(), account=other, auth=theirs))


def test_revoking_a_grant_deletes_the_connections_it_alone_covered(
    world: World, two: World
) -> None:
    everything = world.grant()
    world.grant(repos=(("562843111", "my-worker"),))
    kept = ok(put(world, connection_body()))
    dropped = ok(put(world, connection_body("1", repo_name="other")))
    gone = world.run(world.services.grants.revoke(everything))
    assert gone == 1
    url = base(world) + "/repos/connections/"
    failure(world.client.get(url + dropped["repo_connection_uuid"], headers=world.auth), 404, 12000)
    still = ok(world.client.get(url + kept["repo_connection_uuid"], headers=world.auth))
    assert still["deleted_on"] is None
    grants = ok(world.client.get(base(world) + "/grants", headers=world.auth))
    assert [g["repository_selection"] for g in grants] == ["selected"]


def test_revoking_a_grant_in_a_single_account_database_deletes_nothing(world: World) -> None:
    """With one account everything is granted, so no connection depends on the grant."""
    grant_id = world.grant()
    made = ok(put(world, connection_body()))
    assert world.run(world.services.grants.revoke(grant_id)) == 0
    url = base(world) + f"/repos/connections/{made['repo_connection_uuid']}"
    assert ok(world.client.get(url, headers=world.auth))["deleted_on"] is None
    assert ok(world.client.get(base(world) + "/grants", headers=world.auth)) == []


# --- the extension: GET …/builds/grants[/{grant_id}] ------------------------------------------


def test_list_and_get_shape(world: World) -> None:
    first = world.grant()
    second = world.grant(owner_id="9", owner="acme", repos=(("1", "site"), ("2", "api")))
    response = world.client.get(base(world) + "/grants", headers=world.auth)
    body = response.json()
    assert response.status_code == 200 and body["success"] is True
    assert body["result_info"] == {
        "page": 1,
        "per_page": 50,
        "count": 2,
        "total_count": 2,
        "total_pages": 1,
    }
    # Creation order; two grants of one millisecond in grant_id order.
    listed = sorted(body["result"], key=lambda g: g["grant_id"] != first)
    assert {g["grant_id"] for g in listed} == {first, second}
    assert all(UUID.match(g["grant_id"]) for g in listed)
    assert listed[0] == {
        "grant_id": first,
        "provider_type": "github",
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "repository_selection": "all",
        "repositories": [],
        "created_on": listed[0]["created_on"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", listed[0]["created_on"])
    one = ok(world.client.get(base(world) + f"/grants/{second}", headers=world.auth))
    assert one["repository_selection"] == "selected"
    assert one["repositories"] == [
        {"repo_id": "1", "repo_name": "site"},
        {"repo_id": "2", "repo_name": "api"},
    ]
    paged = world.client.get(
        base(world) + "/grants", params={"per_page": 1, "page": 2}, headers=world.auth
    )
    assert [g["grant_id"] for g in ok(paged)] == [body["result"][1]["grant_id"]]
    failure(
        world.client.get(base(world) + "/grants", params={"per_page": 0}, headers=world.auth),
        400,
        12013,
    )


def test_read_permission_is_enough_and_auth_failures(world: World) -> None:
    grant_id = world.grant()
    reader = world.bearer(world.new_token("Workers CI Read"))
    assert len(ok(world.client.get(base(world) + "/grants", headers=reader))) == 1
    for path in ("/grants", f"/grants/{grant_id}"):
        failure(world.client.get(base(world) + path), 401, 12005)
        bad = {"Authorization": "Bearer not-a-token-of-anyone-0123456789abcde"}
        failure(world.client.get(base(world) + path, headers=bad), 401, 12006)
        other = world.new_account()
        stranger = world.bearer(world.new_token(account=other))
        failure(world.client.get(base(world) + path, headers=stranger), 403, 10000)


def test_writes_are_the_operators(world: World) -> None:
    """No tenant may grant itself another's owner: the API has no write for grants."""
    url = base(world) + "/grants"
    body = {"provider_type": "github", **THEIR_OWNER}
    assert world.client.post(url, json=body, headers=world.auth).status_code == 405
    grant_id = world.grant()
    response = world.client.delete(f"{url}/{grant_id}", headers=world.auth)
    assert response.status_code == 405
    assert len(ok(world.client.get(url, headers=world.auth))) == 1


def test_another_accounts_grant_is_not_found(world: World, two: World) -> None:
    b = two
    [theirs] = ok(b.client.get(base(b) + "/grants", headers=b.auth))
    failure(
        world.client.get(base(world) + f"/grants/{theirs['grant_id']}", headers=world.auth),
        404,
        12000,
    )
    assert ok(world.client.get(base(world) + "/grants", headers=world.auth)) == []
    # A's token on B's path: not B's member, whatever the id.
    mine = world.grant()
    for grant_id in (theirs["grant_id"], mine):
        url = base(b) + f"/grants/{grant_id}"
        failure(world.client.get(url, headers=world.auth), 403, 10000)
    failure(world.client.get(base(b) + "/grants", headers=world.auth), 403, 10000)
    # B's token on its own path with A's id: absent, as on A's path.
    failure(b.client.get(base(b) + f"/grants/{mine}", headers=b.auth), 404, 12000)
    unknown = "6f1c9e3e-1111-4222-8333-944455556666"
    failure(world.client.get(base(world) + f"/grants/{unknown}", headers=world.auth), 404, 12000)
    # Upper-case is the same id.
    upper = theirs["grant_id"].upper()
    assert (
        ok(b.client.get(base(b) + f"/grants/{upper}", headers=b.auth))["grant_id"]
        == theirs["grant_id"]
    )


def test_strict_mode_removes_the_extension(make_world) -> None:
    world = make_world(strict=True)
    grant_id = world.grant()
    for path in ("/grants", f"/grants/{grant_id}"):
        failure(world.client.get(base(world) + path, headers=world.auth), 404, 12000)
    document = world.client.get("/client/v4/openapi.json").json()
    assert not [p for p in document["paths"] if "/grants" in p]
    served = make_world().client.get("/client/v4/openapi.json").json()
    operation = served["paths"]["/client/v4/accounts/{account_id}/builds/grants"]["get"]
    assert operation["tags"] == ["extensions"]
