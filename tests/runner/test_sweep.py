"""What a killed runner left behind (runner/sweep.py, docs/builds.md "Lost runner"): a runner
removes, at start and every half lease, the workspaces of builds no runner holds and kills the
processes still working in them; never a workspace some runner holds, its own included."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.flows import base, build, ok
from tests.runner.conftest import Repo, make_trigger, wait_for, wait_line

ELSEWHERE = "elsewhere:1:abcdef"  # a runner of another process, holding its builds' leases


def until(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def leftover() -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """A process working in a directory, as an unconfined build of a killed runner leaves it."""
    started: list[subprocess.Popen[bytes]] = []

    def start(cwd: Path) -> subprocess.Popen[bytes]:
        cwd.mkdir(parents=True)
        process = subprocess.Popen(["sleep", "120"], cwd=cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def test_at_start_a_runner_sweeps_what_a_killed_runner_left_and_not_what_one_holds(
    runner_world, repo: Repo, leftover, caplog
) -> None:
    # A process without a runner queues two builds; a runner elsewhere claims both, then one
    # is cancelled (its runner was killed: no one stops its process or removes its workspace).
    first = runner_world(runner_slots=0, lease_seconds=60)
    t = make_trigger(first, build_command="", deploy_command="true")
    held, gone = build(first, t["trigger_uuid"]), build(first, t["trigger_uuid"])
    for _ in range(2):
        assert first.run(first.services.runs.claim(ELSEWHERE)) is not None
    ok(first.client.put(base(first) + f"/builds/{gone['build_uuid']}/cancel", headers=first.auth))
    data = first.services.settings.data_path
    kept = data / "builds" / held["build_uuid"]
    kept.mkdir(parents=True)
    (kept / "file").write_text("held\n")
    swept = data / "builds" / gone["build_uuid"]
    process = leftover(swept / "repo")
    unknown = data / "builds" / str(uuid.uuid4())  # no such build at all
    unknown.mkdir()
    old, fresh = data / "tmp" / "autofill-old", data / "tmp" / "autofill-fresh"
    old.mkdir(parents=True)
    fresh.mkdir()
    an_hour_ago = time.time() - 3600  # autofill's scratch lives at most a clone's timeout
    os.utime(old, (an_hour_ago, an_hour_ago))

    runner_world(lease_seconds=60)  # a runner starts: its first sweep is now, the next in 30 s

    until(lambda: process.poll() is not None, "the leftover process still runs")
    assert process.returncode == -signal.SIGKILL
    until(lambda: not swept.exists() and not unknown.exists(), f"{swept} is still there")
    until(lambda: not old.exists(), "old autofill scratch is still there")
    assert (kept / "file").read_text() == "held\n"
    assert fresh.is_dir()
    assert f"removed the workspace of build {gone['build_uuid']}" in caplog.text
    assert f"killed process {process.pid}" in caplog.text
    assert f"removed the workspace of build {held['build_uuid']}" not in caplog.text


def test_a_runner_never_sweeps_its_own_build_while_it_stops_it(
    runner_world, repo: Repo, tmp_path: Path
) -> None:
    """A cancelled build is stopped at once in the database while its runner still gives its
    command the grace period: no sweep (every half lease) may take its workspace meanwhile."""
    world = runner_world(lease_seconds=2, cancel_grace_seconds=60)  # a sweep every second
    token = f"45.{os.getpid():07d}"  # the deploy command's sleep, a duration no one else uses
    t = make_trigger(
        world,
        build_command='echo kept > "$HOME/kept"',
        deploy_command=f"trap '' TERM; echo holding; sleep {token}",
    )
    running = build(world, t["trigger_uuid"])
    wait_line(world, running["build_uuid"], "holding")
    workspace = world.services.settings.data_path / "builds" / running["build_uuid"]
    cancel = base(world) + f"/builds/{running['build_uuid']}/cancel"
    ok(world.client.put(cancel, headers=world.auth))
    # A sweep that comes after the cancel: a workspace no one holds, planted now, goes.
    planted = workspace.parent / str(uuid.uuid4())
    planted.mkdir()
    until(lambda: not planted.exists(), "no sweep ran")
    assert sleeping(token), "the cancelled build's command was killed before its grace ended"
    assert (workspace / "kept").read_text() == "kept\n", "the build's workspace was swept"
    for pid in sleeping(token):  # its grace period, cut short
        os.kill(pid, signal.SIGKILL)
    assert wait_for(world, running["build_uuid"])["build_outcome"] == "cancelled"
    until(lambda: not workspace.exists(), "the build's own cleanup did not run")


def sleeping(token: str) -> list[int]:
    """Live processes running `sleep <token>`."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError):
            zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            if (entry / "cmdline").read_bytes() == f"sleep\0{token}\0".encode() and not zombie:
                found.append(int(entry.name))
    return found
