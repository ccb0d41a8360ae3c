"""Build variables (spec §5.6, D14): map and list forms, null deletes, limits, secrets hidden."""

from __future__ import annotations

import pytest

from tests.api.flows import base, build, failure, ok, trigger
from tests.conftest import World

SECRET = "s3cr3t-value-that-must-never-leak"


def url(world: World, trigger_uuid: str) -> str:
    return base(world) + f"/triggers/{trigger_uuid}/environment_variables"


def test_map_form_merge_and_secret_reads_null(world: World) -> None:
    t = trigger(world)
    first = world.client.patch(
        url(world, t["trigger_uuid"]),
        headers=world.auth,
        json={
            "NODE_ENV": {"value": "production", "is_secret": False},
            "API_KEY": {"value": SECRET, "is_secret": True},
        },
    )
    result = ok(first)
    assert SECRET not in first.text
    assert result["NODE_ENV"]["value"] == "production" and result["NODE_ENV"]["is_secret"] is False
    assert result["API_KEY"] == {
        "value": None,
        "is_secret": True,
        "created_on": result["API_KEY"]["created_on"],
    }
    merged = ok(
        world.client.patch(
            url(world, t["trigger_uuid"]),
            headers=world.auth,
            json={"EXTRA": {"value": "1", "is_secret": False}},
        )
    )
    assert set(merged) == {"API_KEY", "EXTRA", "NODE_ENV"}
    listed = world.client.get(url(world, t["trigger_uuid"]), headers=world.auth)
    assert ok(listed) == merged and SECRET not in listed.text


def test_null_entry_deletes_and_null_value_keeps(world: World) -> None:
    t = trigger(world)
    u = url(world, t["trigger_uuid"])
    ok(
        world.client.patch(
            u,
            headers=world.auth,
            json={
                "A": {"value": "a", "is_secret": False},
                "S": {"value": SECRET, "is_secret": True},
            },
        )
    )
    # Send back what was read: the secret reads null and must keep its value.
    echoed = ok(world.client.get(u, headers=world.auth))
    kept = ok(
        world.client.patch(
            u,
            headers=world.auth,
            json={k: {"value": v["value"], "is_secret": v["is_secret"]} for k, v in echoed.items()},
        )
    )
    assert set(kept) == {"A", "S"}
    values = world.run(_plain(world, t["trigger_uuid"]))
    assert values["S"] == (SECRET, True)
    after = ok(world.client.patch(u, headers=world.auth, json={"A": None}))
    assert set(after) == {"S"}
    failure(
        world.client.patch(u, headers=world.auth, json={"NEW": {"is_secret": False}}), 400, 12002
    )


async def _plain(world: World, trigger_uuid: str) -> dict:
    async with world.services.db.connection() as conn:
        return await world.services.triggers.plain_variables(conn, trigger_uuid)


def test_list_form_of_the_guide(world: World) -> None:
    t = trigger(world)
    result = ok(
        world.client.patch(
            url(world, t["trigger_uuid"]),
            headers=world.auth,
            json={
                "variables": [
                    {"key": "NODE_ENV", "value": "production", "type": "text"},
                    {"key": "TOKEN", "value": SECRET, "type": "secret"},
                ]
            },
        )
    )
    assert result["NODE_ENV"]["value"] == "production"
    assert result["TOKEN"]["is_secret"] is True and result["TOKEN"]["value"] is None


def test_secrets_are_encrypted_at_rest(world: World) -> None:
    t = trigger(world)
    ok(
        world.client.patch(
            url(world, t["trigger_uuid"]),
            headers=world.auth,
            json={"S": {"value": SECRET, "is_secret": True}},
        )
    )

    async def stored() -> str:
        async with world.services.db.connection() as conn:
            row = await conn.one("SELECT value FROM environment_variables")
            return str(row["value"])

    assert SECRET not in world.run(stored())


def test_build_metadata_shows_variables_as_objects_with_secrets_null(world: World) -> None:
    t = trigger(world)
    ok(
        world.client.patch(
            url(world, t["trigger_uuid"]),
            headers=world.auth,
            json={
                "A": {"value": "a", "is_secret": False},
                "S": {"value": SECRET, "is_secret": True},
            },
        )
    )
    response = world.client.post(
        base(world) + f"/triggers/{t['trigger_uuid']}/builds",
        json={"branch": "main"},
        headers=world.auth,
    )
    env = ok(response)["build_trigger_metadata"]["environment_variables"]
    assert env["A"]["value"] == "a" and env["S"]["value"] is None and env["S"]["is_secret"]
    assert SECRET not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"1BAD": {"value": "x", "is_secret": False}},
        {"BAD-NAME": {"value": "x", "is_secret": False}},
        {"A": {"value": "x" * 5001, "is_secret": False}},
        {"A": {"value": 1, "is_secret": False}},
        {"A": {"value": "x", "is_secret": False, "other": 1}},
        {"A": "x"},
        {"variables": [{"key": "A", "value": "x", "type": "plain"}]},
        {"variables": [{"key": "1A", "value": "x"}]},
        [],
    ],
)
def test_bad_bodies_write_nothing(world: World, body: object) -> None:
    t = trigger(world)
    failure(
        world.client.patch(url(world, t["trigger_uuid"]), json=body, headers=world.auth), 400, 12002
    )
    assert ok(world.client.get(url(world, t["trigger_uuid"]), headers=world.auth)) == {}


def test_at_most_64_variables(world: World) -> None:
    t = trigger(world)
    u = url(world, t["trigger_uuid"])
    many = {f"V{i}": {"value": "x", "is_secret": False} for i in range(64)}
    assert len(ok(world.client.patch(u, json=many, headers=world.auth))) == 64
    failure(
        world.client.patch(
            u, json={"ONE_MORE": {"value": "x", "is_secret": False}}, headers=world.auth
        ),
        400,
        12002,
    )
    assert len(ok(world.client.get(u, headers=world.auth))) == 64
    # Replacing one in the same request keeps the count within the limit.
    swap = {"V0": None, "NEW": {"value": "y", "is_secret": False}}
    assert "NEW" in ok(world.client.patch(u, json=swap, headers=world.auth))


def test_delete_by_key_and_unknowns(world: World) -> None:
    t = trigger(world)
    u = url(world, t["trigger_uuid"])
    ok(world.client.patch(u, json={"A": {"value": "a", "is_secret": False}}, headers=world.auth))
    assert ok(world.client.delete(u + "/A", headers=world.auth)) is None
    failure(world.client.delete(u + "/A", headers=world.auth), 404, 12000)
    failure(
        world.client.get(base(world) + "/triggers/nope/environment_variables", headers=world.auth),
        404,
        12000,
    )
    build(world, t["trigger_uuid"])  # a build is not a reason to refuse changes
    assert ok(world.client.get(u, headers=world.auth)) == {}
