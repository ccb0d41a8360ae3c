"""Fault rules on API calls and the request journal (D26)."""

from __future__ import annotations

import time

from tests.api import flows
from tests.conftest import World
from tests.emulator.conftest import control


def _tokens(world: World, auth: dict[str, str] | None = None) -> int:
    return world.client.get(flows.base(world) + "/tokens", headers=auth or world.auth).status_code


def test_a_status_fault_answers_cloudflares_error_until_deleted(emu: World) -> None:
    rule = control(
        emu,
        "POST",
        "faults",
        json={
            "method": "get",
            "path": "*/builds/tokens",
            "status": 429,
            "code": 971,
            "message": "Rate limited",
            "retry_after": 7,
        },
    )
    assert rule["id"] and rule["method"] == "GET"
    answer = emu.client.get(flows.base(emu) + "/tokens", headers=emu.auth)
    assert flows.failure(answer, 429, 971)["message"] == "Rate limited"
    assert answer.headers["retry-after"] == "7"
    assert _tokens(emu) == 429 and control(emu, "GET", "faults")[0]["matched"] == 2
    assert (
        emu.client.put(
            flows.base(emu) + "/repos/connections", json=flows.connection_body(), headers=emu.auth
        ).status_code
        == 200
    )  # another method: untouched
    control(emu, "DELETE", f"faults/{rule['id']}")
    assert _tokens(emu) == 200 and control(emu, "GET", "faults") == []
    flows.failure(emu.client.delete(f"/_buildsd/faults/{rule['id']}"), 404, 12000)


def test_nth_call_operation_id_and_account(emu: World) -> None:
    other = control(emu, "POST", "accounts")
    control(
        emu,
        "POST",
        "faults",
        json={
            "operation": "listBuildTokens",
            "status": 401,
            "code": 12006,
            "nth": 2,
            "account_id": emu.account,
        },
    )
    assert [_tokens(emu) for _ in range(3)] == [200, 401, 200]
    theirs = f"/client/v4/accounts/{other['account_id']}/builds/tokens"
    assert emu.client.get(theirs, headers=emu.bearer(other["token"])).status_code == 200
    control(emu, "DELETE", "faults")
    control(emu, "POST", "faults", json={"operation": "upsertRepoConnection", "status": 403})
    assert _tokens(emu) == 200  # another operation


def test_probability_under_a_seed_repeats(emu: World) -> None:
    def pattern() -> list[int]:
        control(emu, "DELETE", "faults")
        control(
            emu,
            "POST",
            "faults",
            json={"path": "*/tokens", "status": 500, "code": 10001, "probability": 0.5, "seed": 42},
        )
        return [_tokens(emu) for _ in range(20)]

    first = pattern()
    assert first == pattern() and {200, 500} == set(first)


def test_latency(emu: World) -> None:
    control(emu, "POST", "faults", json={"path": "*/tokens", "latency_ms": 150})
    started = time.monotonic()
    assert _tokens(emu) == 200
    assert time.monotonic() - started >= 0.15


def test_bad_fault_rules(emu: World) -> None:
    for bad in ({}, {"status": 200}, {"status": 500, "probability": 2}, {"path": 3}):
        flows.failure(emu.client.post("/_buildsd/faults", json=bad), 400, 12002)


def test_the_journal_records_calls_with_secrets_masked(emu: World) -> None:
    trigger = flows.trigger(emu)
    url = f"{flows.base(emu)}/triggers/{trigger['trigger_uuid']}/environment_variables"
    secret = "s3cr3t-value-that-must-never-leak"
    body = {
        "API_KEY": {"value": secret, "is_secret": True},
        "MODE": {"value": "x", "is_secret": False},
    }
    flows.ok(emu.client.patch(url, json=body, headers=emu.auth))
    entries = control(emu, "GET", "requests", params={"account_id": emu.account})
    assert [e["method"] for e in entries] == ["PUT", "POST", "POST", "PATCH"]
    assert secret not in str(entries) and flows.BUILD_TOKEN_SECRET not in str(entries)
    token_call, patch = entries[1], entries[3]
    assert token_call["body"]["build_token_secret"] == "********"
    assert token_call["body"]["build_token_name"] == "deploy"
    assert patch["body"] == {
        "API_KEY": {"value": "********", "is_secret": True},
        "MODE": {"value": "x", "is_secret": False},
    }
    assert patch["status"] == 200 and patch["time"].endswith("Z") and patch["query"] == ""
    listed = {"variables": [{"key": "K", "value": secret, "type": "secret"}]}
    emu.client.patch(url + "?x=1", json=listed, headers=emu.auth)
    last = control(
        emu, "GET", "requests", params={"method": "patch", "path": "*/environment_variables"}
    )
    assert len(last) == 2 and last[-1]["query"] == "x=1" and secret not in str(last)
    emu.client.post(flows.base(emu) + "/tokens", content=b"not json", headers=emu.auth)
    raw = control(emu, "GET", "requests", params={"method": "POST"})[-1]
    assert raw["body"] == "not json" and raw["status"] == 400


def test_poll_counts_stay_bounded(emu: World) -> None:
    from buildsd.services import emulation

    for n in range(emulation.JOURNAL_SIZE + 5):
        emu.services.emulation.count_poll(str(n))
    assert len(emu.services.emulation.polls) == emulation.JOURNAL_SIZE
    assert "0" not in emu.services.emulation.polls
