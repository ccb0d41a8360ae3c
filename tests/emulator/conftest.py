"""The emulator's tests: an app with the control API on and simulated builds, on both databases;
the virtual clock (one per process) is put back after every test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buildsd import clock
from tests.api import flows
from tests.conftest import World


@pytest.fixture(autouse=True)
def real_clock() -> Iterator[None]:
    yield
    clock.reset_virtual()


@pytest.fixture
def emu(make_world: Callable[..., World]) -> World:
    return make_world(control_api=True, runner="simulate", runner_slots=4, grants="all")


def control(world: World, method: str, path: str, **kwargs: Any) -> Any:
    return flows.ok(world.client.request(method, f"/_buildsd/{path}", **kwargs))


def set_variables(world: World, trigger_uuid: str, **values: str) -> None:
    body = {name: {"value": value, "is_secret": False} for name, value in values.items()}
    url = f"{flows.base(world)}/triggers/{trigger_uuid}/environment_variables"
    flows.ok(world.client.patch(url, json=body, headers=world.auth))


def wait_stopped(world: World, build_uuid: str, timeout: float = 10.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    url = f"{flows.base(world)}/builds/{build_uuid}"
    while True:
        build = dict(flows.ok(world.client.get(url, headers=world.auth)))
        if build["status"] == "stopped":
            return build
        assert time.monotonic() < deadline, build
        time.sleep(0.01)


def log_lines(world: World, build_uuid: str) -> list[str]:
    url = f"{flows.base(world)}/builds/{build_uuid}/logs"
    return [line[1] for line in flows.ok(world.client.get(url, headers=world.auth))["lines"]]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)
    return found
