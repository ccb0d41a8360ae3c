"""The authentication catalogue of D2 on Builds routes, for a write and a read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.test_repo_connections import BODY, PATH
from tests.conftest import World


def write(world: World, headers: dict[str, str]):
    return world.client.put(PATH.format(account=world.account), json=BODY, headers=headers)


def read(world: World, headers: dict[str, str]):
    return world.client.get(PATH.format(account=world.account), headers=headers)


def errors(response) -> list[dict]:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    return body["errors"]


def assert_nothing_written(world: World) -> None:
    assert read(world, world.auth).json()["result_info"]["total_count"] == 0


@pytest.mark.parametrize("call", [write, read])
def test_no_credentials_is_401_12005(world: World, call) -> None:
    response = call(world, {})
    assert response.status_code == 401
    assert errors(response) == [
        {"code": 12005, "message": "Missing token from authorization header"}
    ]


@pytest.mark.parametrize(
    "value",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer a b", "xyz"],
)
def test_malformed_authorization_is_400_6003_6111(world: World, value: str) -> None:
    response = write(world, {"Authorization": value})
    assert response.status_code == 400
    assert errors(response) == [
        {
            "code": 6003,
            "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }
    ]
    assert_nothing_written(world)


def test_bearer_scheme_is_case_insensitive(world: World) -> None:
    assert write(world, {"Authorization": f"bearer {world.token}"}).status_code == 200


def _invalid_token(world: World, token: str) -> None:
    for call in (write, read):
        response = call(world, world.bearer(token))
        assert response.status_code == 401, response.text
        assert errors(response) == [{"code": 12006, "message": "Invalid token"}]


def test_unknown_token_is_401_12006(world: World) -> None:
    _invalid_token(world, "Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY")
    assert_nothing_written(world)


def test_expired_token_is_401_12006(world: World) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    _invalid_token(world, world.new_token("Workers CI Write", expires_on=past))


def test_token_expiring_later_works(world: World) -> None:
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    token = world.new_token("Workers CI Write", expires_on=future)
    assert write(world, world.bearer(token)).status_code == 200


def test_revoked_token_is_401_12006(world: World) -> None:
    token = world.new_token("Workers CI Write")
    assert write(world, world.bearer(token)).status_code == 200
    rows = world.run(world.services.admin.list_tokens(world.account))
    token_id = next(row.id for row in rows if row.name == "user token")
    world.run(world.services.admin.revoke_token(token_id))
    _invalid_token(world, token)


def test_account_owned_token_is_401_12006(world: World) -> None:
    _invalid_token(world, world.new_token("Workers CI Write", owner_type="account"))


def test_read_only_token_reads_but_cannot_write(world: World) -> None:
    token = world.new_token("Workers CI Read")
    assert read(world, world.bearer(token)).status_code == 200
    response = write(world, world.bearer(token))
    assert response.status_code == 403
    assert errors(response) == [{"code": 10000, "message": "Authentication error"}]
    assert_nothing_written(world)


def test_write_implies_read(world: World) -> None:
    assert read(world, world.auth).status_code == 200


def test_token_of_another_account_is_403_10000(world: World) -> None:
    other = world.new_account()
    token = world.new_token("Workers CI Write", account=other)
    for call in (write, read):
        response = call(world, world.bearer(token))
        assert response.status_code == 403
        assert errors(response) == [{"code": 10000, "message": "Authentication error"}]
    assert_nothing_written(world)


def test_unknown_account_in_path_is_403_10000(world: World) -> None:
    for account in ("ffffffffffffffffffffffffffffffff", "not-an-account"):
        response = world.client.put(PATH.format(account=account), json=BODY, headers=world.auth)
        assert response.status_code == 403
        assert errors(response)[0]["code"] == 10000


def _key_user(world: World, account: str | None = None) -> tuple[str, str]:
    email = "dev@example.com"
    key = world.run(world.services.admin.create_user(email, account or world.account))
    return email, key


def test_global_api_key_of_a_member_works(world: World) -> None:
    email, key = _key_user(world)
    headers = {"X-Auth-Email": email, "X-Auth-Key": key}
    assert write(world, headers).status_code == 200
    assert read(world, headers).status_code == 200


def test_global_api_key_of_a_non_member_is_403_10000(world: World) -> None:
    email, key = _key_user(world, world.new_account())
    response = write(world, {"X-Auth-Email": email, "X-Auth-Key": key})
    assert response.status_code == 403
    assert errors(response)[0]["code"] == 10000
    assert_nothing_written(world)


def test_wrong_key_pair_is_403_9103(world: World) -> None:
    email, key = _key_user(world)
    wrong = "0" * 37
    for headers in (
        {"X-Auth-Email": email, "X-Auth-Key": wrong},
        {"X-Auth-Email": "nobody@example.com", "X-Auth-Key": key},
    ):
        response = write(world, headers)
        assert response.status_code == 403
        assert errors(response) == [{"code": 9103, "message": "Unknown X-Auth-Key or X-Auth-Email"}]


@pytest.mark.parametrize(
    ("headers", "chain"),
    [
        ({"X-Auth-Email": "dev@example.com", "X-Auth-Key": "not-hex"}, [6103]),
        ({"X-Auth-Email": "not an email", "X-Auth-Key": "a" * 37}, [6102]),
        ({"X-Auth-Email": "bad", "X-Auth-Key": "bad"}, [6102, 6103]),
        ({"X-Auth-Key": "a" * 37}, [6100]),
        ({"X-Auth-Email": "dev@example.com"}, [6101]),
    ],
)
def test_malformed_legacy_headers_are_400_6003(world: World, headers: dict, chain: list) -> None:
    response = write(world, headers)
    assert response.status_code == 400
    (error,) = errors(response)
    assert error["code"] == 6003
    assert [c["code"] for c in error["error_chain"]] == chain
    assert_nothing_written(world)


def test_a_new_token_works_at_once_and_a_cached_one_is_revoked_at_once(world: World) -> None:
    token = world.new_token("Workers CI Write")
    assert read(world, world.bearer(token)).status_code == 200
    rows = world.run(world.services.admin.list_tokens(world.account))
    world.run(world.services.admin.revoke_token(rows[-1].id))
    assert read(world, world.bearer(token)).status_code == 401
