"""Build tokens (spec §4, D19): paged list with next_page, create, delete; secrets never shown."""

from __future__ import annotations

from tests.api.flows import BUILD_TOKEN_SECRET, base, build_token, failure, ok
from tests.conftest import World


def test_create_returns_the_four_fields_and_never_the_secret(world: World) -> None:
    response = world.client.post(
        base(world) + "/tokens",
        json={
            "build_token_name": "deploy",
            "build_token_secret": BUILD_TOKEN_SECRET,
            "cloudflare_token_id": "abc",
        },
        headers=world.auth,
    )
    result = ok(response)
    assert set(result) == {
        "build_token_uuid",
        "build_token_name",
        "cloudflare_token_id",
        "owner_type",
    }
    assert result["owner_type"] == "user"
    assert BUILD_TOKEN_SECRET not in response.text
    listed = world.client.get(base(world) + "/tokens", headers=world.auth)
    assert BUILD_TOKEN_SECRET not in listed.text


def test_secret_is_encrypted_at_rest(world: World) -> None:
    build_token(world)

    async def stored() -> str:
        async with world.services.db.connection() as conn:
            row = await conn.one("SELECT build_token_secret FROM build_tokens")
            return str(row["build_token_secret"])

    assert BUILD_TOKEN_SECRET not in world.run(stored())


def test_list_pages_with_next_page(world: World) -> None:
    made = [build_token(world, f"t{i}") for i in range(3)]
    first = world.client.get(base(world) + "/tokens", params={"per_page": 2}, headers=world.auth)
    body = first.json()
    assert [t["build_token_uuid"] for t in body["result"]] == [
        t["build_token_uuid"] for t in made[:2]
    ]
    assert body["result_info"] == {
        "page": 1,
        "per_page": 2,
        "count": 2,
        "total_count": 3,
        "total_pages": 2,
        "next_page": True,
    }
    last = world.client.get(
        base(world) + "/tokens", params={"per_page": 2, "page": 2}, headers=world.auth
    ).json()
    assert last["result_info"]["next_page"] is False and len(last["result"]) == 1
    past = world.client.get(base(world) + "/tokens", params={"page": 5}, headers=world.auth)
    assert ok(past) == []


def test_delete_is_hard_and_returns_null(world: World) -> None:
    token = build_token(world)
    url = base(world) + f"/tokens/{token['build_token_uuid']}"
    assert ok(world.client.delete(url, headers=world.auth)) is None
    failure(world.client.delete(url, headers=world.auth), 404, 12000)
    assert ok(world.client.get(base(world) + "/tokens", headers=world.auth)) == []


def test_bad_bodies_unknown_and_foreign_ids(world: World) -> None:
    for body in (
        {},
        {"build_token_name": "x"},
        {"build_token_name": "x", "build_token_secret": "", "cloudflare_token_id": "y"},
        [],
    ):
        failure(
            world.client.post(base(world) + "/tokens", json=body, headers=world.auth), 400, 12002
        )
    failure(
        world.client.get(base(world) + "/tokens", params={"per_page": 0}, headers=world.auth),
        400,
        12013,
    )
    failure(world.client.delete(base(world) + "/tokens/nope", headers=world.auth), 404, 12000)
    other = world.new_account()
    theirs = world.new_token(account=other)
    foreign = ok(
        world.client.post(
            base(world, other) + "/tokens",
            headers=world.bearer(theirs),
            json={"build_token_name": "x", "build_token_secret": "s", "cloudflare_token_id": "y"},
        )
    )
    url = base(world) + f"/tokens/{foreign['build_token_uuid']}"
    failure(world.client.delete(url, headers=world.auth), 404, 12000)
    assert (
        len(ok(world.client.get(base(world, other) + "/tokens", headers=world.bearer(theirs)))) == 1
    )


def test_auth_failures(world: World) -> None:
    url = base(world) + "/tokens"
    failure(world.client.get(url), 401, 12005)
    failure(world.client.get(url, headers=world.bearer("x" * 40)), 401, 12006)
    reader = world.new_token("Workers CI Read")
    assert world.client.get(url, headers=world.bearer(reader)).status_code == 200
    body = {"build_token_name": "x", "build_token_secret": "s", "cloudflare_token_id": "y"}
    failure(world.client.post(url, json=body, headers=world.bearer(reader)), 403, 10000)
