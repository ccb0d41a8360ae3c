"""The buildsd processes of a soak run: start, wait until ready, SIGKILL, restart, stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
BUILDSD = [sys.executable, "-m", "buildsd"]
STOP_GRACE_S = 15.0
READY_TIMEOUT_S = 60.0


class StartError(RuntimeError):
    """A process did not become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Proc:
    """One `buildsd serve` or `buildsd worker`, restartable with the same port and settings."""

    name: str
    kind: str  # serve | worker
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    alive: bool = False  # ready and not killed: clients may send it requests
    starts: int = 0
    kills: int = 0
    restarts: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def argv(self) -> list[str]:
        if self.kind == "serve":
            return [*BUILDSD, "serve", "--host", HOST, "--port", str(self.port)]
        return [*BUILDSD, "worker"]

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv(),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the processes
            )
        self.starts += 1
        self.pids.append(self.process.pid)

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Serve: /readyz answers 200. Worker: its runner has logged its slots."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        marker = f"runner {socket.gethostname()}:{self.process.pid}:"
        async with httpx.AsyncClient(timeout=2) as probe:
            while loop.time() < deadline:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise StartError(f"{self.name} exited with {code}:\n{self.tail()}")
                if self.kind == "serve":
                    with contextlib.suppress(httpx.HTTPError):
                        if (await probe.get(self.url + "/readyz")).status_code == 200:
                            self.alive = True
                            return
                elif marker in self.log_path.read_text(errors="replace"):
                    self.alive = True
                    return
                await asyncio.sleep(0.05)
        raise StartError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        self.alive = False
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE_S."""
        self.alive = False
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def kill_strays(workdir: Path) -> int:
    """SIGKILL what our processes left behind (build commands of a killed runner): any process
    whose working directory or command line lies in `workdir`, which only they use."""
    killed = 0
    mark = str(workdir)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(mark) or mark in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed
