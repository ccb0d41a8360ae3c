"""Hand-written seeds (services/seeding.py): accounts, tokens, connections, build tokens,
triggers with variables and builds, in the API's shapes; a bad one names its pointer and
loads nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

from tests.api import flows
from tests.conftest import World
from tests.emulator.conftest import control, wait_for

OTHER = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN_A = "seeded-token-of-account-a-000000000000000"[:40]
TOKEN_B = "seeded-token-of-account-b-111111111111111"[:40]
TAG = "dd7160bb9cef458093557736f4b9e75b"
TAG_B = "ee7160bb9cef458093557736f4b9e75b"  # a Worker belongs to one account (D24)


def _account(account_id: str | None, token: str, tag: str = TAG) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "name": "seeded",
        "tokens": [{"value": token}],
        "repo_connections": [
            {
                "provider_type": "github",
                "provider_account_id": "41612145",
                "provider_account_name": "octo-org",
                "repo_id": "562843111",
                "repo_name": "widgets",
            }
        ],
        "build_tokens": [
            {
                "build_token_name": "deploy",
                "build_token_secret": "s" * 40,
                "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b",
            }
        ],
        "triggers": [
            {
                "external_script_id": tag,
                "repo_connection": "562843111",
                "build_token": "deploy",
                "trigger_name": "production",
                "branch_includes": ["main"],
                "build_command": "npm run build",
                "deploy_command": "npx wrangler deploy",
                "variables": {
                    "NODE_ENV": {"value": "production", "is_secret": False},
                    "API_KEY": {"value": "s3cr3t-value-that-must-never-leak", "is_secret": True},
                },
                "builds": [
                    {"build_outcome": "fail", "branch": "main", "commit_hash": "a" * 40},
                    {"status": "stopped", "build_outcome": "success", "branch": "main"},
                ],
            }
        ],
    }


def _get(world: World, token: str, path: str, account: str) -> Any:
    base = f"/client/v4/accounts/{account}/builds"
    return flows.ok(world.client.get(base + path, headers=world.bearer(token)))


def test_a_hand_written_seed_loads_through_the_services(emu: World) -> None:
    document = {"accounts": [_account(emu.account, TOKEN_A), _account(OTHER, TOKEN_B, TAG_B)]}
    assert control(emu, "POST", "seed", json=document)["rows"] > 0
    for account, token, tag in ((emu.account, TOKEN_A, TAG), (OTHER, TOKEN_B, TAG_B)):
        triggers = _get(emu, token, f"/workers/{tag}/triggers", account)
        assert [t["trigger_name"] for t in triggers] == ["production"]
        assert triggers[0]["repo_connection"]["repo_name"] == "widgets"
        uuid = triggers[0]["trigger_uuid"]
        variables = _get(emu, token, f"/triggers/{uuid}/environment_variables", account)
        assert variables["NODE_ENV"]["value"] == "production"
        assert variables["API_KEY"]["value"] is None  # secret: never returned
        builds = _get(emu, token, f"/workers/{tag}/builds", account)
        assert sorted(b["build_outcome"] for b in builds) == ["fail", "success"]
        assert {b["status"] for b in builds} == {"stopped"}
    # The emulator's own token still works for its account (the first run's state).
    assert _get(emu, emu.token, f"/workers/{TAG}/triggers", emu.account)


def test_a_seeded_accounts_token_reaches_only_its_account(emu: World) -> None:
    document = {"accounts": [_account(emu.account, TOKEN_A), _account(OTHER, TOKEN_B, TAG_B)]}
    control(emu, "POST", "seed", json=document)
    base = f"/client/v4/accounts/{emu.account}/builds/workers/{TAG}/triggers"
    flows.failure(emu.client.get(base, headers=emu.bearer(TOKEN_B)), 403, 10000)


def test_a_queued_seeded_build_is_run(emu: World) -> None:
    account = _account(None, TOKEN_B)
    account["triggers"][0]["builds"] = [{"status": "queued", "branch": "main"}]
    control(emu, "POST", "seed", json={"accounts": [account]})

    def stopped() -> Any:
        accounts = _seeded_accounts(emu)
        builds = _get(emu, TOKEN_B, f"/workers/{TAG}/builds", accounts[0])
        return builds and builds[0]["status"] == "stopped" and builds[0]

    assert wait_for(stopped)["build_outcome"] == "success"


def _seeded_accounts(world: World) -> list[str]:
    async def ids() -> list[str]:
        async with world.services.db.connection() as conn:
            rows = await conn.all("SELECT id FROM accounts WHERE id != :a", {"a": world.account})
        return [str(row["id"]) for row in rows]

    found: list[str] = world.run(ids())
    return found


def _refused(world: World, document: Any) -> dict[str, Any]:
    response = world.client.post("/_buildsd/seed", json=document)
    return flows.failure(response, 400, 12002)


def test_bad_hand_written_seeds_name_the_pointer_and_load_nothing(emu: World) -> None:
    before = flows.trigger(emu)  # the state a refused seed must leave as it is
    good = _account(emu.account, TOKEN_A)
    cases: list[tuple[Any, str]] = []
    short_token = copy.deepcopy(good)
    short_token["tokens"][0]["value"] = "short"
    cases.append((short_token, "/accounts/0/tokens/0/value"))
    unknown_repo = copy.deepcopy(good)
    unknown_repo["triggers"][0]["repo_connection"] = "999"
    cases.append((unknown_repo, "/accounts/0/triggers/0/repo_connection"))
    bad_body = copy.deepcopy(good)
    bad_body["repo_connections"][0]["provider_type"] = "svn"
    cases.append((bad_body, "/accounts/0/repo_connections/0/provider_type"))
    unknown_field = copy.deepcopy(good)
    unknown_field["triggers"][0]["environment_variables"] = {}
    cases.append((unknown_field, "/accounts/0/triggers/0/environment_variables"))
    bad_build = copy.deepcopy(good)
    bad_build["triggers"][0]["builds"][0]["build_outcome"] = "exploded"
    cases.append((bad_build, "/accounts/0/triggers/0/builds/0/build_outcome"))
    # Refused only by the service, while applying (D17: a trigger that matches no branch):
    # what was made before it is undone.
    no_branch = copy.deepcopy(good)
    no_branch["triggers"][0]["branch_includes"] = []
    cases.append((no_branch, "/accounts/0/triggers/0/branch_includes"))
    bad_permission = copy.deepcopy(good)
    bad_permission["tokens"][0]["permissions"] = ["Everything"]
    cases.append((bad_permission, "/accounts/0/tokens/0"))
    taken = copy.deepcopy(good)  # the emulator's own token's value: refused by the database
    taken["tokens"][0]["value"] = emu.token
    cases.append((taken, "/accounts/0/tokens/0"))
    for account, pointer in cases:
        error = _refused(emu, {"accounts": [account]})
        assert error.get("source", {}).get("pointer") == pointer, error
        triggers = _get(
            emu, emu.token, f"/workers/{before['external_script_id']}/triggers", emu.account
        )
        assert [t["trigger_uuid"] for t in triggers] == [before["trigger_uuid"]], pointer
        assert _seeded_accounts(emu) == []
    for both_or_neither in ({"accounts": [good], "tables": {}}, {}):
        _refused(emu, both_or_neither)
    twice = {"accounts": [_account(OTHER, TOKEN_A), _account(OTHER, TOKEN_B, TAG_B)]}
    assert _refused(emu, twice)["source"]["pointer"] == "/accounts/1/account_id"
