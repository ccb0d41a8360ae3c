"""Running one command in its own process group: streamed output, timeout, cancel, no survivors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None when the command was stopped
    stopped: str | None = None  # "cancelled" or "timeout"


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, by the parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _terminate(pid: int, sandboxed: bool) -> None:
    """SIGTERM, the start of the grace period. A sandbox (bwrap) would die of it at once and
    take its processes with it, so it is spared and its processes get the signal instead."""
    if not sandboxed:
        _kill_group(pid, signal.SIGTERM)
        return
    for child in _descendants(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGTERM)


async def run(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    on_line: Callable[[str], None],
    deadline: float,
    stop: asyncio.Event,
    grace_seconds: float,
    sandboxed: bool = False,
) -> Outcome:
    """Run `argv`; every output line (stdout and stderr) goes to `on_line` as it is produced.

    Stops the whole process group when `stop` is set or the loop clock passes `deadline`:
    SIGTERM, then SIGKILL after `grace_seconds`. `sandboxed`: `argv` runs a bwrap sandbox.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, so children die with it
    )
    pgid = process.pid
    reader = asyncio.create_task(_pump(process, on_line))
    waiter = asyncio.create_task(process.wait())
    stopper = asyncio.create_task(stop.wait())
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    done, _ = await asyncio.wait({waiter, stopper}, timeout=timeout, return_when="FIRST_COMPLETED")
    stopped = None
    if waiter not in done:
        stopped = "cancelled" if stopper in done else "timeout"
        _terminate(pgid, sandboxed)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), grace_seconds)
        except TimeoutError:
            _kill_group(pgid, signal.SIGKILL)
            await waiter
    # The leader is gone; make sure nothing it started lingers in its group.
    _kill_group(pgid, signal.SIGKILL)
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopper
    # A process that left the group (setsid) could hold the pipe open: stop reading after a while.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, 5)
    return Outcome(exit_code=None if stopped else process.returncode, stopped=stopped)


async def _pump(process: asyncio.subprocess.Process, on_line: Callable[[str], None]) -> None:
    """Split output into lines by hand: readline() fails on lines longer than its buffer."""
    assert process.stdout is not None
    pending = b""
    while chunk := await process.stdout.read(65536):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            on_line(_text(raw[:MAX_LINE_BYTES]).rstrip("\r"))
        if len(pending) > MAX_LINE_BYTES:
            on_line(_text(pending[:MAX_LINE_BYTES]))
            pending = b""
    if pending:
        on_line(_text(pending).rstrip("\r"))


def _text(raw: bytes) -> str:
    # PostgreSQL text cannot hold NUL: a NUL byte shows as U+FFFD, like bytes that are not UTF-8.
    return raw.decode(errors="replace").replace("\0", "\ufffd")
