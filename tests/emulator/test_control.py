"""The control API under /_buildsd/ (D26): who may reach it, accounts, reset, snapshots, clock."""

from __future__ import annotations

from collections.abc import Callable

from tests.api import flows
from tests.conftest import ACCOUNT, World
from tests.emulator.conftest import control


def test_absent_unless_enabled_and_never_in_strict_mode(
    make_world: Callable[..., World],
) -> None:
    for overrides in ({}, {"control_api": True, "strict": True}):
        world = make_world(**overrides)
        flows.failure(world.client.post("/_buildsd/reset"), 400, 7000)
        flows.failure(world.client.post("/_buildsd/accounts"), 400, 7000)


def test_unknown_control_route_and_bad_bodies(emu: World) -> None:
    flows.failure(emu.client.post("/_buildsd/nothing"), 400, 7000)
    flows.failure(emu.client.post("/_buildsd/"), 400, 7000)
    flows.failure(emu.client.get("/_buildsd/reset"), 400, 7000)
    flows.failure(emu.client.post("/_buildsd/accounts", content=b"{"), 400, 12002)
    flows.failure(emu.client.post("/_buildsd/accounts", json={"nope": 1}), 400, 12002)
    flows.failure(emu.client.post("/_buildsd/reset?account_id=XYZ"), 400, 12013)
    flows.failure(emu.client.post(f"/_buildsd/reset?account_id={'e' * 32}"), 404, 12000)


def test_a_new_account_is_isolated_with_write_and_read_tokens(emu: World) -> None:
    made = control(emu, "POST", "accounts", json={"name": "ci", "read_token": True})
    assert made["account_id"] != ACCOUNT and made["token"] and made["read_token"]
    mine = f"/client/v4/accounts/{made['account_id']}/builds"
    write, read = emu.bearer(made["token"]), emu.bearer(made["read_token"])
    body = flows.connection_body()
    flows.ok(emu.client.put(mine + "/repos/connections", json=body, headers=write))
    flows.ok(emu.client.get(mine + "/tokens", headers=read))
    flows.failure(emu.client.put(mine + "/repos/connections", json=body, headers=read), 403, 10000)
    # Its token is refused on the first account, and the first account's on it.
    flows.failure(emu.client.get(flows.base(emu) + "/tokens", headers=write), 403, 10000)
    flows.failure(emu.client.get(mine + "/tokens", headers=emu.auth), 403, 10000)
    without_read = control(emu, "POST", "accounts")
    assert without_read["read_token"] is None


def test_reset_of_one_account_leaves_another_untouched(emu: World) -> None:
    flows.trigger(emu)
    other = control(emu, "POST", "accounts")
    theirs = f"/client/v4/accounts/{other['account_id']}/builds"
    auth = emu.bearer(other["token"])
    flows.ok(
        emu.client.put(theirs + "/repos/connections", json=flows.connection_body(), headers=auth)
    )
    done = control(emu, "POST", "reset", params={"account_id": other["account_id"]})
    assert done["account_id"] == other["account_id"] and done["milliseconds"] >= 0
    assert flows.ok(emu.client.get(theirs + "/repos/connections", headers=auth)) == []
    assert len(flows.ok(emu.client.get(flows.base(emu) + "/triggers", headers=emu.auth))) == 1
    # The reset account's credentials still work.
    flows.ok(emu.client.get(theirs + "/tokens", headers=auth))


def test_full_reset_goes_back_to_first_run(emu: World) -> None:
    flows.trigger(emu)
    other = control(emu, "POST", "accounts")
    theirs = f"/client/v4/accounts/{other['account_id']}/builds/tokens"
    flows.ok(emu.client.get(theirs, headers=emu.bearer(other["token"])))  # now remembered
    control(emu, "POST", "clock", json={"frozen": True})
    control(emu, "POST", "faults", json={"path": "/nowhere", "status": 500})
    control(emu, "POST", "reset")
    assert flows.ok(emu.client.get(flows.base(emu) + "/triggers", headers=emu.auth)) == []
    # Refused at once, not when the credential cache lapses a second later.
    flows.failure(emu.client.get(theirs, headers=emu.bearer(other["token"])), 401, 12006)
    assert control(emu, "GET", "faults") == [] and not control(emu, "GET", "clock")["frozen"]


def test_snapshot_round_trip(emu: World) -> None:
    trigger = flows.trigger(emu)
    build = flows.build(emu, trigger["trigger_uuid"])
    saved = control(emu, "POST", "snapshots/before")
    assert saved["name"] == "before" and saved["rows"] > 5
    control(emu, "POST", "reset")
    assert flows.ok(emu.client.get(flows.base(emu) + "/triggers", headers=emu.auth)) == []
    control(emu, "POST", "snapshots/before/restore")
    triggers = flows.ok(emu.client.get(flows.base(emu) + "/triggers", headers=emu.auth))
    assert [t["trigger_uuid"] for t in triggers] == [trigger["trigger_uuid"]]
    url = f"{flows.base(emu)}/builds/{build['build_uuid']}"
    assert flows.ok(emu.client.get(url, headers=emu.auth))["build_uuid"] == build["build_uuid"]
    flows.failure(emu.client.post("/_buildsd/snapshots/missing/restore"), 404, 12000)
    flows.failure(emu.client.post("/_buildsd/snapshots/b%20ad"), 400, 12002)


def test_clock_freeze_and_advance_move_timestamps(emu: World) -> None:
    frozen = control(emu, "POST", "clock", json={"freeze_at": "2030-01-02T03:04:05Z"})
    assert frozen == {"now": "2030-01-02T03:04:05.000Z", "epoch_ms": 1893553445000, "frozen": True}
    made = flows.connection(emu)
    assert made["created_on"] == "2030-01-02T03:04:05.000Z"
    after = control(emu, "POST", "clock", json={"advance_seconds": 60})
    assert after["now"] == "2030-01-02T03:05:05.000Z"
    running = control(emu, "POST", "clock", json={"frozen": False})
    assert not running["frozen"] and running["now"] >= "2030-01-02T03:05:05.000Z"
    control(emu, "POST", "clock", json={"advance_seconds": 3600})
    assert control(emu, "GET", "clock")["now"] >= "2030-01-02T04:05:05.000Z"
    flows.failure(emu.client.post("/_buildsd/clock", json={"advance_seconds": -1}), 400, 12002)
    flows.failure(emu.client.post("/_buildsd/clock", json={"freeze_at": "soon"}), 400, 12002)
    control(emu, "POST", "clock", json={"reset": True})
    assert control(emu, "GET", "clock")["now"] < "2030"


def test_frozen_clock_expires_a_token(emu: World) -> None:
    token = emu.new_token(expires_on="2031-01-01T00:00:00Z")
    flows.ok(emu.client.get(flows.base(emu) + "/tokens", headers=emu.bearer(token)))
    control(emu, "POST", "clock", json={"freeze_at": "2031-06-01T00:00:00Z"})
    expired = emu.client.get(flows.base(emu) + "/tokens", headers=emu.bearer(token))
    flows.failure(expired, 401, 12006)


def test_a_bug_in_a_control_call_answers_500_in_the_envelope(emu: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    async def broken(name: str) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(emu.services.emulation, "snapshot", broken)
    flows.failure(emu.client.post("/_buildsd/snapshots/x"), 500, 10001)


def test_seed_from_an_exported_snapshot_round_trips_every_row_kind(emu: World) -> None:
    trigger = flows.trigger(emu)
    url = f"{flows.base(emu)}/triggers/{trigger['trigger_uuid']}/environment_variables"
    secret = {"API_KEY": {"value": "s3cr3t-value-that-must-never-leak", "is_secret": True}}
    flows.ok(emu.client.patch(url, json=secret, headers=emu.auth))
    build = flows.build(emu, trigger["trigger_uuid"])
    from tests.emulator.conftest import wait_stopped

    wait_stopped(emu, build["build_uuid"])
    control(emu, "POST", "snapshots/all")
    document = control(emu, "GET", "snapshots/all")
    kinds = {name for name, rows in document["tables"].items() if rows}
    assert {
        "repo_connections",
        "build_tokens",
        "triggers",
        "environment_variables",
        "builds",
        "build_log_lines",
        "build_events",
        "api_tokens",
        "accounts",
    } <= kinds
    control(emu, "POST", "reset")
    loaded = control(emu, "POST", "seed", json=document)
    assert loaded["rows"] == sum(len(rows) for rows in document["tables"].values())
    assert (
        control(emu, "POST", "snapshots/again")
        and control(emu, "GET", "snapshots/again") == document
    )
    variables = flows.ok(emu.client.get(url, headers=emu.auth))
    assert variables["API_KEY"]["value"] is None  # still secret, still there
    flows.failure(emu.client.get("/_buildsd/snapshots/none"), 404, 12000)


def test_bad_seeds_are_refused_and_change_nothing(emu: World) -> None:
    flows.connection(emu)
    for bad in (
        {"tables": {"nope": []}},
        {"tables": {"accounts": [{"id": "x", 'evil" = 1 --': 2}]}},
        {"tables": {"accounts": [{"id": "a"}, {"name": "b"}]}},
        {"tables": {"accounts": [{"id": "a", "name": {"nested": 1}}]}},
        {"rows": {}},
    ):
        flows.failure(emu.client.post("/_buildsd/seed", json=bad), 400, 12002)
    duplicate = {
        "tables": {
            "accounts": [{"id": "a" * 32, "name": "x", "created_on": "2026-01-01T00:00:00.000Z"}]
            * 2
        }
    }
    flows.failure(emu.client.post("/_buildsd/seed", json=duplicate), 400, 12002)
    connections = flows.ok(emu.client.get(flows.base(emu) + "/repos/connections", headers=emu.auth))
    assert len(connections) == 1
