"""The runner loop: claim queued builds into free slots, run them, stop lost builds of others."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from buildsd.config import Settings
from buildsd.runner.build import BuildRun
from buildsd.runner.sandbox import Sandbox
from buildsd.runner.simulate import SimulatedBuild
from buildsd.runner.sweep import sweep
from buildsd.services import Services
from buildsd.services.runs import Job

log = logging.getLogger("buildsd.runner")

# How often an idle runner looks for work queued by another process; work queued by this
# process wakes it at once.
POLL_SECONDS = 0.25


def runner_id() -> str:
    """Names this runner in leases and log lines: host, process, and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Runner:
    def __init__(
        self, services: Services, settings: Settings, sandbox: Sandbox | None = None
    ) -> None:
        self.services = services
        self.settings = settings
        self.sandbox = sandbox or Sandbox(settings)
        self.owner = runner_id()
        self.active: dict[asyncio.Task[None], BuildRun | SimulatedBuild] = {}
        self.simulated = settings.runner == "simulate"

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set; then the builds still running are terminated."""
        runs = self.services.runs
        loop = asyncio.get_running_loop()
        next_reap = 0.0
        log.info("runner %s: %d slot(s)", self.owner, self.settings.runner_slots)
        if not self.simulated:
            await asyncio.to_thread(announce, self.sandbox)
        while not stopping.is_set():
            try:
                # Simulated builds keep their own deadline on the virtual clock; a lease the
                # clock jumped past says nothing about a runner lost (docs/testing.md).
                if loop.time() >= next_reap and not self.simulated:
                    for build_uuid in await runs.reap():
                        log.warning("build %s terminated: its runner's lease lapsed", build_uuid)
                    mine = {build.job.build_uuid for build in self.active.values()}
                    scratch = self.settings.git_timeout_seconds + 60  # autofill's longest
                    await sweep(self.settings.data_path, runs, mine, scratch)
                    next_reap = loop.time() + max(1.0, self.settings.lease_seconds / 2)
                while len(self.active) < self.settings.runner_slots:
                    build = await self._claim()
                    if build is None:
                        break
                    task = asyncio.create_task(build.execute())
                    self.active[task] = build
                    task.add_done_callback(self._done)
            except Exception:  # the database may be briefly unreachable: keep the runner alive
                log.exception("runner %s: claim or reap failed; retrying", self.owner)
                await asyncio.sleep(1)
            await runs.wait_for_work(POLL_SECONDS)
        await self.shutdown()

    async def _claim(self) -> BuildRun | SimulatedBuild | None:
        runs = self.services.runs
        if self.simulated:  # under the emulator's gate: no reset between claim and start
            emulation = self.services.emulation
            async with emulation.gate:
                job = await runs.claim(self.owner)
                return None if job is None else SimulatedBuild(job, runs, self.settings, emulation)
        job = await runs.claim(self.owner)
        return None if job is None else self._build(job)

    def _build(self, job: Job) -> BuildRun:
        cache = self.services.triggers.cache_dir(job.build["trigger_uuid"])
        return BuildRun(job, self.services.runs, self.settings, cache, self.sandbox)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.active.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("build task failed", exc_info=task.exception())
        self.services.runs.notify()  # a slot is free

    async def shutdown(self) -> None:
        for build in self.active.values():
            build.request_stop("shutdown")
        if self.active:
            await asyncio.wait(list(self.active), timeout=self.settings.cancel_grace_seconds + 5)


def announce(sandbox: Sandbox) -> None:
    """Say at start-up how builds run when they do not run in bubblewrap, or cannot."""
    builds = sandbox.settings.data_path / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    if problem := sandbox.unreachable(builds):
        log.error("build sandbox: every build will fail: %s", problem)
    status = sandbox.status()
    if status.mode == "off":
        log.warning(
            "build sandbox off (BUILDSD_SANDBOX=off): builds run as this server's user, "
            "beside its files and its environment"
        )
    elif status.mode == "unavailable":
        required = sandbox.settings.sandbox == "bwrap"
        log.error(
            "build sandbox unavailable (%s): %s; install bubblewrap or set BUILDSD_SANDBOX=off",
            status.reason,
            "every build fails (BUILDSD_SANDBOX=bwrap)"
            if required
            else "builds run unconfined while the database holds one account, and fail with more",
        )
