"""Stopping builds: cancel, timeout, the per-account limit, and no process left behind."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from tests.api.flows import base, build, ok
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for, wait_line


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def processes_with(token: str) -> list[int]:
    """Live processes whose command line holds `token` (builds run in their own PID namespace:
    a pid they print means nothing out here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # a process may end while it is looked at
            if token.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_cancel_a_running_build_kills_every_process(runner_world, repo: Repo) -> None:
    world = runner_world()
    token = f"120.{secrets.randbelow(10**6):06d}"  # a sleep of a duration no one else uses
    # A shell that starts a child which ignores SIGTERM: only SIGKILL ends it.
    command = f"sh -c 'trap \"\" TERM; sleep {token}' & echo started; wait"
    t = make_trigger(world, build_command=command, deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    wait_line(world, queued["build_uuid"], "started")
    assert len(processes_with(token)) >= 2  # the build's shell, the child (and its sandbox)
    started = time.monotonic()
    cancelled = ok(
        world.client.put(base(world) + f"/builds/{queued['build_uuid']}/cancel", headers=world.auth)
    )
    assert cancelled["build_outcome"] == "cancelled"
    deadline = time.monotonic() + 15
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with(token)
    assert time.monotonic() - started < 10  # 1 s to notice + 2 s grace, then SIGKILL
    done = wait_for(world, queued["build_uuid"])
    assert done["build_outcome"] == "cancelled"
    wait_line(world, queued["build_uuid"], "Build cancelled.")


def test_a_cancelled_sandboxed_build_gets_sigterm_first(runner_world, repo: Repo) -> None:
    """The sandbox (bwrap) is spared the SIGTERM, which would end it and everything in it at
    once; the build's own processes get it, and their grace period."""
    world = runner_world()
    command = "trap 'echo got TERM; exit 0' TERM; echo started; sleep 60 & wait"
    t = make_trigger(world, build_command=command, deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    wait_line(world, queued["build_uuid"], "started")
    ok(world.client.put(base(world) + f"/builds/{queued['build_uuid']}/cancel", headers=world.auth))
    wait_line(world, queued["build_uuid"], "Build cancelled.")
    assert "got TERM" in log_lines(world, queued["build_uuid"])


def test_a_build_over_its_time_is_terminated(runner_world, repo: Repo) -> None:
    world = runner_world(build_timeout_seconds=2)
    t = make_trigger(world, build_command="echo start; sleep 60", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"], timeout=20)
    assert done["build_outcome"] == "terminated"
    lines = log_lines(world, queued["build_uuid"])
    assert "start" in lines and "Build was timed out" in lines


def test_the_per_account_limit_keeps_a_second_build_queued(runner_world, repo: Repo) -> None:
    world = runner_world(max_concurrent_builds_per_account=1, runner_slots=3)
    t = make_trigger(world, build_command="sleep 2", deploy_command="true")
    first = build(world, t["trigger_uuid"])
    wait_for(world, first["build_uuid"], ("running",))
    second = build(world, t["trigger_uuid"])
    time.sleep(0.8)
    assert (
        ok(world.client.get(base(world) + f"/builds/{second['build_uuid']}", headers=world.auth))[
            "status"
        ]
        == "queued"
    )
    assert wait_for(world, first["build_uuid"])["build_outcome"] == "success"
    assert wait_for(world, second["build_uuid"])["build_outcome"] == "success"


def test_deleting_the_trigger_cancels_its_running_build(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="sleep 60", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    wait_for(world, queued["build_uuid"], ("running",))
    ok(world.client.delete(base(world) + f"/triggers/{t['trigger_uuid']}", headers=world.auth))
    assert wait_for(world, queued["build_uuid"])["build_outcome"] == "cancelled"


def test_a_build_cancelled_while_cloning_never_runs_a_command(
    runner_world, repo: Repo, monkeypatch
) -> None:
    from buildsd import git

    clone = git.clone_commands
    monkeypatch.setattr(git, "clone_commands", lambda *a: [["sleep", "1.5"], *clone(*a)])
    world = runner_world()
    t = make_trigger(world, build_command="echo RAN", deploy_command="echo RAN")
    queued = build(world, t["trigger_uuid"])
    wait_for(world, queued["build_uuid"], ("initializing",))
    ok(world.client.put(base(world) + f"/builds/{queued['build_uuid']}/cancel", headers=world.auth))
    time.sleep(2.5)
    done = wait_for(world, queued["build_uuid"])
    assert (done["build_outcome"], done["running_on"]) == ("cancelled", None)
    lines = log_lines(world, queued["build_uuid"])
    assert "RAN" not in lines and "Success: Build completed" not in lines


def test_a_runner_that_wakes_after_its_lease_lapsed_gives_the_build_up(
    runner_world, repo: Repo
) -> None:
    from buildsd.runner.build import LogWriter
    from buildsd.runner.masking import Masker

    world = runner_world(runner_slots=0)
    runs = world.services.runs
    t = make_trigger(world, build_command="true", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    job = world.run(runs.claim("frozen-runner"))

    async def lapse() -> None:
        async with world.services.db.connection() as conn:
            await conn.run("UPDATE builds SET lease_expires_on = '2000-01-01T00:00:00.000Z'")

    world.run(lapse())
    assert world.run(runs.reap()) == [queued["build_uuid"]]
    assert world.run(runs.renew(job)) is None  # the build is no longer this runner's
    writer = LogWriter(runs, job.build_uuid, Masker([]), first_seq=1)  # as before the freeze
    writer.line("late output")
    world.run(writer.flush())
    assert writer.lost
    lines = log_lines(world, queued["build_uuid"])
    assert len(lines) == 1 and "stopped renewing its lease" in lines[0]
    assert wait_for(world, queued["build_uuid"])["build_outcome"] == "terminated"
