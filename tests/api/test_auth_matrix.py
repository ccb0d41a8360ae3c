"""Every Builds operation of the route table × every way a credential can be wrong (D2), and
every Workers platform operation × the same credentials, answered with v4's general codes
(D24, docs/compatibility.md).

Generated from the route table, so a new route cannot escape it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from buildsd.api.routes import OPERATIONS
from tests.conftest import World

BUILDS_OPERATIONS = [op for op in OPERATIONS if op.access.startswith("builds:")]
WRITES = [op for op in BUILDS_OPERATIONS if op.access == "builds:write"]
SCRIPTS_OPERATIONS = [op for op in OPERATIONS if op.access.startswith("scripts:")]
PLACEHOLDER = "6f1c9e3e-1111-4222-8333-944455556666"


def path_of(op, account: str) -> str:
    def fill(match: re.Match[str]) -> str:
        return account if match.group(1) == "account_id" else PLACEHOLDER

    return re.sub(r"{([^}]+)}", fill, op.path)


def call(world: World, op, headers: dict[str, str], account: str | None = None):
    return world.client.request(
        op.method, path_of(op, account or world.account), headers=headers, json={}
    )


def expect(response, status: int, code: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == code


ids = [f"{op.method} {op.operation_id}" for op in BUILDS_OPERATIONS]


@pytest.fixture
def credentials(world: World) -> dict[str, dict[str, str]]:
    other = world.new_account()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    revoked = world.new_token("Workers CI Write", name="to-revoke")
    rows = world.run(world.services.admin.list_tokens(world.account))
    world.run(world.services.admin.revoke_token(next(r.id for r in rows if r.name == "to-revoke")))
    key = world.run(world.services.admin.create_user("member@example.com", world.account))
    outsider = world.run(world.services.admin.create_user("outsider@example.com", other))
    return {
        "none": {},
        "malformed": {"Authorization": "Token abc"},
        "unknown": world.bearer("Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY"),
        "revoked": world.bearer(revoked),
        "expired": world.bearer(world.new_token("Workers CI Write", expires_on=past)),
        "account_owned": world.bearer(world.new_token("Workers CI Write", owner_type="account")),
        "read_only": world.bearer(world.new_token("Workers CI Read")),
        "other_account": world.bearer(world.new_token("Workers CI Write", account=other)),
        "key_member": {"X-Auth-Email": "member@example.com", "X-Auth-Key": key},
        "key_outsider": {"X-Auth-Email": "outsider@example.com", "X-Auth-Key": outsider},
        "key_wrong": {"X-Auth-Email": "member@example.com", "X-Auth-Key": "0" * 37},
    }


EXPECTED = {
    "none": (401, 12005),
    "malformed": (400, 6003),
    "unknown": (401, 12006),
    "revoked": (401, 12006),
    "expired": (401, 12006),
    "account_owned": (401, 12006),
    "other_account": (403, 10000),
    "key_outsider": (403, 10000),
    "key_wrong": (403, 9103),
}


@pytest.mark.parametrize("op", BUILDS_OPERATIONS, ids=ids)
def test_every_operation_refuses_every_bad_credential(world: World, credentials, op) -> None:
    for name, (status, code) in EXPECTED.items():
        response = call(world, op, credentials[name])
        assert response.status_code == status, (name, response.text)
        expect(response, status, code)
    # Good credentials get past authentication (to a 2xx, 400 or 404 on these placeholder ids).
    for name in ("key_member",):
        assert call(world, op, credentials[name]).status_code not in (401, 403), name
    read_only = call(world, op, credentials["read_only"])
    if op.access == "builds:write":
        expect(read_only, 403, 10000)
    else:
        assert read_only.status_code not in (401, 403)


@pytest.mark.parametrize("op", BUILDS_OPERATIONS, ids=ids)
def test_an_account_that_does_not_exist_is_forbidden(world: World, op) -> None:
    expect(call(world, op, world.auth, account="f" * 32), 403, 10000)


# The Workers platform calls (D24): v4's general failures, and account tokens are welcome.
SCRIPTS_EXPECTED = {
    "none": (400, 9106),
    "malformed": (400, 6003),
    "unknown": (401, 1000),
    "revoked": (401, 1000),
    "expired": (401, 1000),
    "ci_only": (403, 10000),
    "other_account": (403, 10000),
    "key_outsider": (403, 10000),
    "key_wrong": (403, 9103),
}
SCRIPTS_WRITE = "Workers Scripts Write"


@pytest.fixture
def scripts_credentials(world: World, credentials) -> dict[str, dict[str, str]]:
    """The Builds matrix's credentials, with Workers Scripts groups where it matters."""
    other = world.new_account("third")
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    revoked = world.new_token(SCRIPTS_WRITE, name="scripts-to-revoke")
    rows = world.run(world.services.admin.list_tokens(world.account))
    world.run(
        world.services.admin.revoke_token(next(r.id for r in rows if r.name == "scripts-to-revoke"))
    )
    return {
        **credentials,
        "revoked": world.bearer(revoked),
        "expired": world.bearer(world.new_token(SCRIPTS_WRITE, expires_on=past)),
        "ci_only": world.bearer(world.new_token("Workers CI Write")),
        "other_account": world.bearer(world.new_token(SCRIPTS_WRITE, account=other)),
        "account_owned": world.bearer(world.new_token(SCRIPTS_WRITE, owner_type="account")),
        "read_only": world.bearer(world.new_token("Workers Scripts Read")),
        "user_token": world.bearer(world.new_token(SCRIPTS_WRITE)),
    }


@pytest.mark.parametrize(
    "op", SCRIPTS_OPERATIONS, ids=[f"{op.method} {op.operation_id}" for op in SCRIPTS_OPERATIONS]
)
def test_every_workers_operation_refuses_every_bad_credential(
    world: World, scripts_credentials, op
) -> None:
    for name, (status, code) in SCRIPTS_EXPECTED.items():
        response = call(world, op, scripts_credentials[name])
        assert response.status_code == status, (name, response.text)
        expect(response, status, code)
    # User and account tokens and a member's Global API Key all get past authentication.
    for name in ("user_token", "account_owned", "key_member"):
        assert call(world, op, scripts_credentials[name]).status_code not in (401, 403), name
    read_only = call(world, op, scripts_credentials["read_only"])
    if op.access == "scripts:write":
        expect(read_only, 403, 10000)
    else:
        assert read_only.status_code not in (401, 403)
    token = scripts_credentials["user_token"]
    expect(call(world, op, token, account="f" * 32), 403, 10000)
