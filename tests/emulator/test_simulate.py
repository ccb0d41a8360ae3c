"""Simulated builds (D27): outcomes, modes, the virtual clock's timeout, cancel, runner faults."""

from __future__ import annotations

from buildsd.runner import phases
from buildsd.runner.build import DELETED_CREDENTIAL_LINE
from tests.api import flows
from tests.conftest import World
from tests.emulator.conftest import control, log_lines, set_variables, wait_for, wait_stopped


def _build(world: World, **variables: str) -> dict:  # type: ignore[type-arg]
    trigger = flows.trigger(world)
    if variables:
        set_variables(world, trigger["trigger_uuid"], **variables)
    return flows.build(world, trigger["trigger_uuid"])


def _status(world: World, build_uuid: str) -> str:
    url = f"{flows.base(world)}/builds/{build_uuid}"
    return str(flows.ok(world.client.get(url, headers=world.auth))["status"])


def test_success_writes_cloudflares_lines_and_events(emu: World) -> None:
    build = wait_stopped(emu, _build(emu)["build_uuid"])
    assert build["build_outcome"] == "success" and build["running_on"] and build["stopped_on"]
    lines = log_lines(emu, build["build_uuid"])
    assert lines[:3] == [phases.INITIALIZING_LINE, phases.INITIALIZED_LINE, phases.CLONING_LINE]
    assert phases.build_line("npm run build") in lines
    assert lines[-1] == phases.DEPLOY_DONE_LINE
    url = f"{flows.base(emu)}/builds/{build['build_uuid']}/logs"
    events = flows.ok(emu.client.get(url, headers=emu.auth))["events"]
    assert [e["type"] for e in events] == list(phases.EVENT_TYPES)
    assert all(e["ended_on"] for e in events)


def test_failure_with_the_triggers_log_lines(emu: World) -> None:
    made = _build(emu, BUILDSD_SIMULATE_OUTCOME="fail", BUILDSD_SIMULATE_LOG="step one\nstep two")
    build = wait_stopped(emu, made["build_uuid"])
    assert build["build_outcome"] == "fail"
    lines = log_lines(emu, build["build_uuid"])
    assert lines[-3:] == ["step one", "step two", phases.failed_line("build command")]


def test_invalid_variables_fail_the_build_saying_why(emu: World) -> None:
    made = _build(emu, BUILDSD_SIMULATE_SECONDS="soon")
    build = wait_stopped(emu, made["build_uuid"])
    assert build["build_outcome"] == "fail"
    assert "BUILDSD_SIMULATE_" in log_lines(emu, build["build_uuid"])[-2]
    made = _build(emu, BUILDSD_SIMULATE_MODE="later")
    assert wait_stopped(emu, made["build_uuid"])["build_outcome"] == "fail"


def test_seconds_follow_the_virtual_clock(emu: World) -> None:
    control(emu, "POST", "clock", json={"frozen": True})
    made = _build(emu, BUILDSD_SIMULATE_SECONDS="90")
    wait_for(lambda: _status(emu, made["build_uuid"]) == "running")
    control(emu, "POST", "clock", json={"advance_seconds": 30})
    assert _status(emu, made["build_uuid"]) == "running"
    control(emu, "POST", "clock", json={"advance_seconds": 60})
    build = wait_stopped(emu, made["build_uuid"])
    assert build["build_outcome"] == "success"


def test_timeout_when_the_clock_passes_the_builds_timeout(emu: World) -> None:
    control(emu, "POST", "clock", json={"frozen": True})
    made = _build(emu, BUILDSD_SIMULATE_OUTCOME="timeout")
    wait_for(lambda: _status(emu, made["build_uuid"]) == "running")
    control(emu, "POST", "clock", json={"advance_seconds": 1199})
    assert _status(emu, made["build_uuid"]) == "running"
    control(emu, "POST", "clock", json={"advance_seconds": 1})
    build = wait_stopped(emu, made["build_uuid"])
    assert build["build_outcome"] == "terminated"
    assert log_lines(emu, build["build_uuid"])[-1] == "Build was timed out"


def test_control_plans_polls_and_manual_modes(emu: World) -> None:
    control(emu, "POST", "simulate", json={"polls": 3, "account_id": emu.account})
    made = _build(emu)
    url = f"{flows.base(emu)}/builds/{made['build_uuid']}"
    statuses = [flows.ok(emu.client.get(url, headers=emu.auth))["status"] for _ in range(2)]
    assert "stopped" not in statuses
    assert wait_stopped(emu, made["build_uuid"])["build_outcome"] == "success"

    plan = control(emu, "POST", "simulate", json={"mode": "manual", "outcome": "fail"})
    assert plan["mode"] == "manual" and plan["account_id"] is None
    emu.run(emu.services.emulation.reset(emu.account))  # the account's own plan goes
    made = flows.build(emu, flows.trigger(emu)["trigger_uuid"])
    wait_for(lambda: _status(emu, made["build_uuid"]) == "running")
    control(emu, "POST", f"builds/{made['build_uuid']}/advance")
    assert wait_stopped(emu, made["build_uuid"])["build_outcome"] == "fail"
    for bad in ({"outcome": "maybe"}, {"mode": "later"}, {"seconds": -1}, {"x": 1}):
        flows.failure(emu.client.post("/_buildsd/simulate", json=bad), 400, 12002)


def test_cancel_of_a_waiting_build(emu: World) -> None:
    made = _build(emu, BUILDSD_SIMULATE_MODE="manual")
    wait_for(lambda: _status(emu, made["build_uuid"]) == "running")
    url = f"{flows.base(emu)}/builds/{made['build_uuid']}/cancel"
    flows.ok(emu.client.put(url, headers=emu.auth))
    build = wait_stopped(emu, made["build_uuid"])
    assert build["build_outcome"] == "cancelled"
    wait_for(lambda: log_lines(emu, made["build_uuid"])[-1] == "Build cancelled.")
    assert wait_stopped(emu, made["build_uuid"])["build_outcome"] == "cancelled"


def test_runner_faults(emu: World) -> None:
    expected = {
        "clone": phases.failed_line("clone repository"),
        "token": DELETED_CREDENTIAL_LINE,
        "install": phases.failed_line("install"),
    }
    trigger = flows.trigger(emu)
    for kind, last in expected.items():
        rule = control(emu, "POST", "faults", json={"runner": kind, "account_id": emu.account})
        build = wait_stopped(emu, flows.build(emu, trigger["trigger_uuid"])["build_uuid"])
        assert build["build_outcome"] == "fail", kind
        assert log_lines(emu, build["build_uuid"])[-1] == last
        control(emu, "DELETE", f"faults/{rule['id']}")
    build = wait_stopped(emu, flows.build(emu, trigger["trigger_uuid"])["build_uuid"])
    assert build["build_outcome"] == "success"  # the deleted rules match no more
    control(emu, "POST", "clock", json={"frozen": True})
    control(emu, "POST", "faults", json={"runner": "timeout"})
    made = flows.build(emu, trigger["trigger_uuid"])
    wait_for(lambda: _status(emu, made["build_uuid"]) == "running")
    control(emu, "POST", "clock", json={"advance_seconds": 1200})
    assert wait_stopped(emu, made["build_uuid"])["build_outcome"] == "terminated"
    flows.failure(emu.client.post("/_buildsd/faults", json={"runner": "disk"}), 400, 12002)


def test_deleted_build_token_fails_as_cloudflare_says(emu: World) -> None:
    trigger = flows.trigger(emu)
    url = f"{flows.base(emu)}/tokens/{trigger['build_token_uuid']}"
    flows.ok(emu.client.delete(url, headers=emu.auth))
    build = wait_stopped(emu, flows.build(emu, trigger["trigger_uuid"])["build_uuid"])
    assert log_lines(emu, build["build_uuid"])[-1] == DELETED_CREDENTIAL_LINE
