"""The outbox's sender in a process of its own (BUILDSD_SENDER): started and watched by `serve`
and `worker`, so that a forge's answers never take the event loop that builds finish on.

Why a process and not a task or a thread: on one event loop every send (building a request,
reading an answer, a claim that runs inline on SQLite) is a step that a build's finish waits
behind, and a thread shares the interpreter lock the same way (`make bench-forges`, the numbers
in docs/benchmarks.md).

The parent writes the resolved settings (secrets included) as the first line of the child's
stdin, never on its command line, which every user of the machine may read. The end of
that pipe is the child's signal to stop: the parent closes it to stop the child, and a parent
that dies, even by SIGKILL, closes it too, so no sender outlives its server. The child finishes
the sends under way (each waits at most BUILDSD_FORGE_TIMEOUT_SECONDS) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Protocol

import msgspec

from buildsd.config import Settings
from buildsd.forges.sender import Sender
from buildsd.services.outbox import Outbox

log = logging.getLogger("buildsd.forges")

# A child that exited on its own (a crash, an out-of-memory kill) is started again this much
# later; what it had claimed comes back when its lease lapses (services/outbox.py).
RESTART_SECONDS = 1.0
# How long a stopping child may take past the forge timeout before it is killed.
STOP_GRACE_SECONDS = 5.0
# The child's scheduling priority below its parent's (nice(2)): its sends can wait a little.
NICENESS = 10
# The child's PostgreSQL pool: its database work goes one statement group at a time.
CHILD_POOL_SIZE = 2


class Runs(Protocol):
    async def run(self, stopping: asyncio.Event) -> None: ...


def sender_for(outbox: Outbox, settings: Settings) -> Runs:
    """The sender `serve` and `worker` start beside their work: in this process when the
    control API is on (the virtual clock, D26, moves this process only) or BUILDSD_SENDER is
    `inline`; else a child process."""
    if settings.sender_inline:
        return Sender(outbox, settings)
    return SenderProcess(settings)


def child_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, database_pool_size=min(settings.database_pool_size, CHILD_POOL_SIZE)
    )


class SenderProcess:
    """The parent's side: start the child, start it again if it dies, stop it on `stopping`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = child_settings(settings)
        self.started = 0  # children started so far (a test waits on it)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "buildsd", "sender", stdin=asyncio.subprocess.PIPE
            )
            self.started += 1
            assert child.stdin is not None
            child.stdin.write(msgspec.json.encode(self._settings) + b"\n")
            with contextlib.suppress(ConnectionError):  # it died at once: seen below
                await child.stdin.drain()
            stop = asyncio.ensure_future(stopping.wait())
            ended = asyncio.ensure_future(child.wait())
            await asyncio.wait([stop, ended], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if stopping.is_set():
                await self._stop(child, ended)
                return
            log.warning(
                "outbox: the sender process exited with %s; starting another in %.0f s",
                child.returncode,
                RESTART_SECONDS,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RESTART_SECONDS)

    async def _stop(self, child: asyncio.subprocess.Process, ended: asyncio.Future[int]) -> None:
        assert child.stdin is not None
        child.stdin.close()  # its end of file: finish what is under way, then exit
        grace = self._settings.forge_timeout_seconds + STOP_GRACE_SECONDS
        try:
            await asyncio.wait_for(asyncio.shield(ended), grace)
        except TimeoutError:
            log.warning("outbox: the sender process did not stop in %.0f s; killed", grace)
            child.kill()
            await ended


def read_settings() -> Settings:
    """The child's first line of stdin: the settings its parent resolved."""
    return msgspec.json.decode(sys.stdin.buffer.readline(), type=Settings)


async def run_child(sender: Sender) -> None:
    """The child's side: send until stdin ends (the parent stopped, or died) or SIGTERM."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    # Background work: where the cores are short, the builds' process goes first.
    os.nice(NICENESS)
    # Ctrl-C reaches the whole process group: the parent decides when its child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_parent() -> None:
        while await reader.read(4096):
            pass  # nothing more is sent: only the end matters
        stopping.set()

    watcher = asyncio.create_task(watch_parent())
    try:
        await sender.run(stopping)
    finally:
        watcher.cancel()
