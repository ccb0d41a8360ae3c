"""The sender in a process of its own (BUILDSD_SENDER, forges/sender_process.py): it delivers
as the inline one does, comes back when it dies, stops with its parent, and takes its secrets
from a pipe, never from its command line."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from buildsd.app import create_app
from buildsd.config import load_settings
from buildsd.errors import ConfigError
from tests.conftest import TOKEN
from tests.forges.conftest import queue_build, run_build, set_forge, settled
from tests.forges.fakeforge import Forge

ORDER = ["Build queued", "Build in progress", "Build in progress", "Build succeeded"]


def senders_of(parent: int) -> list[int]:
    """The pids of `buildsd sender` processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"buildsd" in argv and b"sender" in argv:
            found.append(int(entry.name))
    return found


def wait_for(check, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def test_updates_go_out_from_a_process_of_its_own(forge_world, forge: Forge):
    world = forge_world(sender="process")
    (child,) = wait_for(lambda: senders_of(os.getpid()))
    set_forge(world, "github", forge.url)
    build_uuid = queue_build(world)
    run_build(world)
    assert [s.body["description"] for s in forge.wait(4)] == ORDER
    assert [u["state"] for u in settled(world, build_uuid)] == ["delivered"] * 4
    # Its settings (the secret key, the bootstrap token) came through a pipe: `ps` shows none.
    argv = Path(f"/proc/{child}/cmdline").read_bytes()
    assert TOKEN.encode() not in argv and argv.split(b"\0")[-3:] == [b"buildsd", b"sender", b""]
    # Background work: below the builds' process where cores are short.
    assert os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, 0) + 10


def test_a_sender_that_dies_is_started_again_and_loses_nothing(forge_world, forge: Forge):
    world = forge_world(sender="process")
    (first,) = wait_for(lambda: senders_of(os.getpid()))
    set_forge(world, "github", forge.url)
    os.kill(first, signal.SIGKILL)  # an out-of-memory kill, say
    build_uuid = queue_build(world)
    run_build(world)
    (second,) = wait_for(lambda: [p for p in senders_of(os.getpid()) if p != first])
    assert [s.body["description"] for s in forge.wait(4)] == ORDER
    assert [u["state"] for u in settled(world, build_uuid)] == ["delivered"] * 4
    assert second != first


def test_the_sender_stops_with_the_app(make_settings):
    with TestClient(create_app(make_settings(sender="process"))):
        wait_for(lambda: senders_of(os.getpid()))
    assert not senders_of(os.getpid())  # the lifespan's end closed its stdin, and reaped it


def test_where_the_sender_runs_follows_the_setting_and_the_control_api():
    assert not load_settings(env={}).sender_inline  # auto: a process of its own
    assert load_settings(env={}, control_api=True).sender_inline  # the virtual clock's process
    assert load_settings(env={"BUILDSD_SENDER": "inline"}).sender_inline
    assert not load_settings(env={"BUILDSD_SENDER": "process"}).sender_inline
    with pytest.raises(ConfigError, match="virtual clock"):
        load_settings(env={"BUILDSD_SENDER": "process"}, control_api=True)
    with pytest.raises(ConfigError):
        load_settings(env={"BUILDSD_SENDER": "thread"})
