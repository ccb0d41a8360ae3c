"""What a killed runner left behind: workspaces of builds no runner holds, processes in them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from buildsd.services.runs import Runs

log = logging.getLogger("buildsd.runner")


async def sweep(data: Path, runs: Runs, active: set[str], scratch_seconds: float) -> list[str]:
    """Remove `data`/builds/* of builds that are neither this runner's (`active`) nor held by
    another (initializing or running: a runner on this machine with the same data dir), after
    killing any process still working in them; and autofill scratch older than
    `scratch_seconds`. Returns the build uuids swept."""
    builds = data / "builds"
    try:
        names = [e.name for e in os.scandir(builds) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        names = []
    candidates = [name for name in names if name not in active]
    left = []
    if candidates:
        held = await runs.running_among(candidates)
        left = [name for name in candidates if name not in held]
    await asyncio.to_thread(_clear, [builds / name for name in left], data / "tmp", scratch_seconds)
    for name in left:
        log.warning("removed the workspace of build %s, left by a runner that was killed", name)
    return left


def _clear(workspaces: list[Path], scratch: Path, scratch_seconds: float) -> None:
    if workspaces:
        # A sandboxed build dies with its runner (bwrap --die-with-parent); one run with
        # BUILDSD_SANDBOX=off may still be working in its workspace.
        for pid in _working_in(workspaces):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                log.warning("killed process %d, left in a build workspace by a killed runner", pid)
    for workspace in workspaces:
        shutil.rmtree(workspace, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(scratch):
            stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > scratch_seconds
            if entry.name.startswith("autofill-") and stale:
                shutil.rmtree(entry.path, ignore_errors=True)


def _working_in(workspaces: list[Path]) -> list[int]:
    """Processes (never this one) whose working directory lies in one of `workspaces`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry.name}/cwd"))
        except OSError:  # gone, or not ours to look at
            continue
        if any(cwd.is_relative_to(workspace) for workspace in workspaces):
            found.append(int(entry.name))
    return found
