"""The pytest plugin (entry point `buildsd`): buildsd as a test double, one isolated account per
test (docs/testing.md). Inert until a test asks for one of its fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

STARTUP_SECONDS = 30.0


class ControlError(AssertionError):
    """A control call the emulator refused (its envelope's errors are in the message)."""


@dataclass
class Emulator:
    """A running buildsd emulator: a child process, an in-process server, or one at BUILDSD_URL."""

    url: str  # …/client/v4
    control_url: str  # …/_buildsd
    account_id: str
    token: str
    _stop: Any = None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One control call; its `result`, or ControlError."""
        import httpx

        response = httpx.request(method, f"{self.control_url}/{path}", timeout=30, **kwargs)
        body = response.json()
        if not body.get("success"):
            raise ControlError(f"{method} /_buildsd/{path}: {response.status_code} {body}")
        return body["result"]

    def new_account(self, *, read_token: bool = False, name: str = "") -> Account:
        made = self.call("POST", "accounts", json={"name": name, "read_token": read_token})
        return Account(self, made["account_id"], made["token"], made["read_token"])

    def reset(self) -> None:
        self.call("POST", "reset")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


@dataclass
class Control:
    """The control API, scoped to one account where that makes sense."""

    emulator: Emulator
    account_id: str
    touched_clock: bool = False

    # faults
    def fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule (docs/testing.md), for this account unless `account_id=None`."""
        rule.setdefault("account_id", self.account_id)
        return dict(self.emulator.call("POST", "faults", json=rule))

    def faults(self) -> list[dict[str, Any]]:
        return list(self.emulator.call("GET", "faults"))

    def delete_fault(self, fault_id: str) -> None:
        self.emulator.call("DELETE", f"faults/{fault_id}")

    # the virtual clock (one per emulator: shared by every account)
    def clock(self) -> dict[str, Any]:
        return dict(self.emulator.call("GET", "clock"))

    def freeze(self, at: str | None = None) -> dict[str, Any]:
        self.touched_clock = True
        body: dict[str, Any] = {"freeze_at": at} if at else {"frozen": True}
        return dict(self.emulator.call("POST", "clock", json=body))

    def advance(self, seconds: float) -> dict[str, Any]:
        self.touched_clock = True
        return dict(self.emulator.call("POST", "clock", json={"advance_seconds": seconds}))

    def reset_clock(self) -> None:
        self.emulator.call("POST", "clock", json={"reset": True})

    # simulated builds
    def simulate(self, **plan: Any) -> dict[str, Any]:
        """How this account's simulated builds go: outcome, seconds, log, mode, polls."""
        plan.setdefault("account_id", self.account_id)
        return dict(self.emulator.call("POST", "simulate", json=plan))

    def advance_build(self, build_uuid: str) -> None:
        """Let a build of mode `manual` end."""
        self.emulator.call("POST", f"builds/{build_uuid}/advance")

    # the journal, snapshots, reset
    def requests(self, **filters: str) -> list[dict[str, Any]]:
        params = {"account_id": self.account_id, **filters}
        return list(self.emulator.call("GET", "requests", params=params))

    def snapshot(self, name: str) -> None:
        self.emulator.call("POST", f"snapshots/{name}")

    def restore(self, name: str) -> None:
        self.emulator.call("POST", f"snapshots/{name}/restore")

    def reset(self) -> None:
        """This account back to empty (its credentials stay)."""
        self.emulator.call("POST", "reset", params={"account_id": self.account_id})


@dataclass
class Account:
    """One isolated account: credentials, a ready client on /client/v4, and the controls."""

    emulator: Emulator
    account_id: str
    token: str
    read_token: str | None = None
    control: Control = field(init=False)
    _client: Any = None

    def __post_init__(self) -> None:
        self.control = Control(self.emulator, self.account_id)

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def builds_url(self) -> str:
        return f"{self.emulator.url}/accounts/{self.account_id}/builds"

    @property
    def client(self) -> Any:
        """An httpx.Client with base_url …/client/v4 and this account's Write token."""
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                base_url=self.emulator.url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
            )
        return self._client

    def wait_for_build(self, build_uuid: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Poll the build until it is stopped; the build."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.get(f"{self.builds_url}/builds/{build_uuid}")
            result = dict(response.json()["result"])
            if result["status"] == "stopped":
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"build {build_uuid} still {result['status']}")
            time.sleep(0.01)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _attach(url: str) -> Emulator:
    base = url.rstrip("/").removesuffix("/client/v4")
    emulator = Emulator(f"{base}/client/v4", f"{base}/_buildsd", "", "")
    made = emulator.call("POST", "accounts", json={"name": "pytest"})
    emulator.account_id, emulator.token = made["account_id"], made["token"]
    return emulator


def _child() -> Emulator:
    """`buildsd emulate` as a child process; its stderr goes to a file shown if it fails."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the emulator stops)
    process = subprocess.Popen(
        [sys.executable, "-m", "buildsd", "emulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(STARTUP_SECONDS)
    if not line or not line[0].strip():
        process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        log.seek(0)
        said = log.read().decode()[-2000:]
        log.close()
        raise RuntimeError(f"buildsd emulate did not start: {said}")

    def stop() -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        log.close()

    found = json.loads(line[0])
    return Emulator(found["url"], found["control_url"], found["account_id"], found["token"], stop)


def _in_process() -> Emulator:
    """The ASGI app on a thread of this process: no process start, the fastest suites."""
    import asyncio

    from buildsd.cli.common import prepare, run_with_services
    from buildsd.cli.emulate import prepare_emulator

    prepared = prepare_emulator()
    prepare(prepared.settings)

    async def nothing(services: Any) -> None:
        return None

    run_with_services(prepared.settings, nothing)
    server = prepared.server()
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[prepared.sock])), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.005)

    def stop() -> None:
        server.should_exit = True
        thread.join(15)
        prepared.close()

    line = prepared.line
    return Emulator(line["url"], line["control_url"], line["account_id"], line["token"], stop)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("buildsd", "buildsd as a test double")
    group.addoption(
        "--buildsd-mode",
        choices=("process", "inprocess"),
        default=os.environ.get("BUILDSD_TEST_MODE", "process"),
        help="buildsd_emulator: `buildsd emulate` as a child process, or in this process",
    )


@pytest.fixture(scope="session")
def buildsd_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """The emulator for this session (for this xdist worker): started here, or the one at
    BUILDSD_URL."""
    if url := os.environ.get("BUILDSD_URL"):
        emulator = _attach(url)
    elif request.config.getoption("buildsd_mode") == "inprocess":
        emulator = _in_process()
    else:
        emulator = _child()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def buildsd_account(buildsd_emulator: Emulator) -> Iterator[Account]:
    """A new isolated account for this test; its resources are removed after it."""
    account = buildsd_emulator.new_account(read_token=True)
    try:
        yield account
    finally:
        account.close()
        with contextlib.suppress(ControlError):  # a test that reset everything: it is gone
            account.control.reset()
        if account.control.touched_clock:
            account.control.reset_clock()
