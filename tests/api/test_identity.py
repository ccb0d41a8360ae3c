"""Token verification and accounts, shaped as Cloudflare shapes them (conventions file §4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from buildsd.errors import AdminError
from tests.conftest import World

VERIFY = "/client/v4/user/tokens/verify"


def test_verify_user_token(world: World) -> None:
    response = world.client.get(VERIFY, headers=world.auth)
    assert response.status_code == 200
    body = response.json()
    assert body["messages"] == [
        {"code": 10000, "message": "This API Token is valid and active", "type": None}
    ]
    assert set(body["result"]) == {"id", "status"}
    assert body["result"]["status"] == "active"
    assert len(body["result"]["id"]) == 32


def test_verify_reports_expiry(world: World) -> None:
    later = datetime.now(UTC) + timedelta(days=2)
    token = world.new_token("Workers CI Read", expires_on=later.isoformat())
    result = world.client.get(VERIFY, headers=world.bearer(token)).json()["result"]
    assert result["expires_on"].endswith("Z") and result["status"] == "active"
    past = datetime.now(UTC) - timedelta(days=2)
    expired = world.new_token("Workers CI Read", expires_on=past.isoformat())
    response = world.client.get(VERIFY, headers=world.bearer(expired))
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "expired"
    assert response.json()["messages"] == []


def test_verify_failures(world: World) -> None:
    unknown = world.client.get(VERIFY, headers=world.bearer("x" * 40))
    assert unknown.status_code == 401
    assert unknown.json()["errors"] == [{"code": 1000, "message": "Invalid API Token"}]
    account_token = world.new_token("Workers CI Read", owner_type="account")
    assert world.client.get(VERIFY, headers=world.bearer(account_token)).status_code == 401
    missing = world.client.get(VERIFY)
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == 9106
    malformed = world.client.get(VERIFY, headers={"Authorization": "Basic x"})
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0]["code"] == 6003


def test_verify_account_token(world: World) -> None:
    path = f"/client/v4/accounts/{world.account}/tokens/verify"
    token = world.new_token("Workers CI Read", owner_type="account")
    response = world.client.get(path, headers=world.bearer(token))
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "active"
    # A user token, or an account token of another account, is not valid here.
    assert world.client.get(path, headers=world.auth).status_code == 401
    other = world.new_account()
    theirs = world.new_token("Workers CI Read", owner_type="account", account=other)
    assert world.client.get(path, headers=world.bearer(theirs)).status_code == 401


def test_accounts_list_and_get(world: World) -> None:
    other = world.new_account("second")
    response = world.client.get("/client/v4/accounts", headers=world.auth)
    assert response.status_code == 200
    body = response.json()
    assert [a["id"] for a in body["result"]] == [world.account]  # the token names one account
    account = body["result"][0]
    assert set(account) == {"id", "name", "type", "settings", "created_on"}
    assert body["result_info"]["total_count"] == 1
    got = world.client.get(f"/client/v4/accounts/{world.account}", headers=world.auth)
    assert got.json()["result"] == account
    denied = world.client.get(f"/client/v4/accounts/{other}", headers=world.auth)
    assert denied.status_code == 403
    assert denied.json()["errors"][0]["code"] == 9109


def test_accounts_with_a_global_api_key(world: World) -> None:
    key = world.run(world.services.admin.create_user("dev@example.com", world.account))
    headers = {"X-Auth-Email": "dev@example.com", "X-Auth-Key": key}
    response = world.client.get("/client/v4/accounts", headers=headers)
    assert [a["id"] for a in response.json()["result"]] == [world.account]
    assert world.client.get("/client/v4/accounts").json()["errors"][0]["code"] == 9106


def test_the_admin_commands_name_an_unknown_account(world: World) -> None:
    admin = world.services.admin
    missing = "f" * 32
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: admin.create_user("dev@example.com", missing),
        lambda: admin.create_token(account_id=missing, permissions=["Workers CI Read"]),
        lambda: admin.list_tokens(missing),
    ]
    for call in calls:
        with pytest.raises(AdminError) as raised:
            world.run(call())
        # What `buildsd tokens create --account <typo>` prints after "Error: ".
        assert str(raised.value) == f"no account {missing}: `buildsd accounts list` shows them"
