"""Real `buildsd serve` processes on a free port, talking to the test's database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCOUNT, TOKEN, let_builds_through

BUILDSD = [sys.executable, "-m", "buildsd"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def cli_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDSD_")}
    env.update(
        BUILDSD_DATABASE_URL=database_url,
        BUILDSD_DATA_DIR=str(data_dir),
        BUILDSD_BOOTSTRAP_TOKEN=TOKEN,
        BUILDSD_BOOTSTRAP_ACCOUNT_ID=ACCOUNT,
        BUILDSD_RATE_LIMIT="0",
        BUILDSD_RUNNER_SLOTS="0",
    )
    return env


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    let_builds_through(tmp_path)
    return cli_env(database_url, tmp_path / "data")


@pytest.fixture
def start_server(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(command: str = "serve", **extra_env: str) -> Server:
        port = free_port()
        log = tmp_path / f"{command}-{port}.log"
        argv = (
            [*BUILDSD, "serve", "--port", str(port)] if command == "serve" else [*BUILDSD, command]
        )
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv,
                env={**env, **extra_env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        if command != "serve":
            return server  # a worker serves no HTTP
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as probe:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{log.read_text()}")
                try:
                    if probe.get(server.url + "/readyz").status_code == 200:
                        return server
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"server not ready in 60 s:\n{log.read_text()}")

    yield start
    # SIGTERM first: a process ended by SIGKILL writes no coverage data (coverage's `sigterm`
    # option saves it on SIGTERM), so whatever only these servers ran would count as never run.
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
