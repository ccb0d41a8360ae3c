"""Account A against account B on one server: names that look like B's owner, and B's ids
sent through A's own paths."""

from __future__ import annotations

import pytest

from tests.api.flows import base, connection_body, failure, ok
from tests.api.test_scripts import SCRIPTS_WRITE, upload, workers
from tests.conftest import World


@pytest.fixture
def b(world: World) -> World:
    other = world.new_account("b")
    world.grant(other, owner="them")
    return World(world.client, world.services, other, world.new_token(account=other))


@pytest.mark.parametrize(
    ("granted", "named"),
    [
        # casefold() made the first one name; as path segments of a clone URL they are two.
        pytest.param("strasse", "straße", id="sharp-s"),
        pytest.param("octo-org", "octo-org ", id="trailing-space"),
        pytest.param("octo-org", "octo\u2011org", id="non-breaking-hyphen"),
    ],
)
def test_a_lookalike_of_a_granted_owner_is_another_owner(
    world: World, b: World, granted: str, named: str
) -> None:
    world.grant(owner=granted)
    body = connection_body(provider_account_name=named)
    url = base(world) + "/repos/connections"
    failure(world.client.put(url, json=body, headers=world.auth), 404, 12000)
    # The very name, and its ASCII case, stay the granted owner.
    ok(
        world.client.put(
            url, json=connection_body(provider_account_name=granted.upper()), headers=world.auth
        )
    )


def test_a_worker_of_the_same_name_reaches_none_of_the_others_versions(world: World) -> None:
    """A and B each upload `my-worker`: A's paths with B's version and deployment ids answer
    404 (or 400 for a deployment naming B's version), and B's Worker stays as it was."""
    world.token = world.new_token(SCRIPTS_WRITE, "Workers CI Write")
    other = world.new_account("b")
    b = World(world.client, world.services, other, world.new_token(SCRIPTS_WRITE, account=other))
    ok(upload(world))
    ok(upload(b))
    theirs = f"{workers(b)}/scripts/my-worker"
    [their_version] = ok(b.client.get(f"{theirs}/versions", headers=b.auth))["items"]
    [their_deployment] = ok(b.client.get(f"{theirs}/deployments", headers=b.auth))["deployments"]
    mine = f"{workers(world)}/scripts/my-worker"
    get = world.client.get
    failure(get(f"{mine}/versions/{their_version['id']}", headers=world.auth), 404, 10007)
    failure(get(f"{mine}/deployments/{their_deployment['id']}", headers=world.auth), 404, 10007)
    shares = {
        "strategy": "percentage",
        "versions": [{"version_id": their_version["id"], "percentage": 100}],
    }
    made = world.client.post(f"{mine}/deployments", json=shares, headers=world.auth)
    assert made.status_code == 400, made.text
    [version] = ok(get(f"{mine}/versions", headers=world.auth))["items"]
    assert version["id"] != their_version["id"]
    # A's token on B's paths: no permission there, nothing changed.
    failure(get(f"{theirs}/versions", headers=world.auth), 403, 10000)
    failure(world.client.delete(theirs, headers=world.auth), 403, 10000)
    assert ok(b.client.get(f"{theirs}/deployments", headers=b.auth))["deployments"] == [
        their_deployment
    ]
    found = world.client.get(
        base(world) + "/builds", params={"version_ids": their_version["id"]}, headers=world.auth
    )
    assert ok(found) == {"builds": {}}
