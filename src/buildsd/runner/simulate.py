"""The simulated runner (D27): a build goes queued → initializing → running → stopped with
Cloudflare's lines and events, without git or commands, on the claim/lease/finish path of the
real one; its outcome, lines and duration come from the plan (services/emulation.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from buildsd import clock
from buildsd.config import Settings
from buildsd.runner import phases
from buildsd.runner.build import DELETED_CREDENTIAL_LINE
from buildsd.runner.masking import Masker
from buildsd.services.emulation import Emulation, Simulation
from buildsd.services.runs import Job, Runs, RunWriter

# How often a waiting build looks at the virtual clock, its poll count and a cancel: short, so
# a test that advances the clock sees the build move at once.
TICK_SECONDS = 0.02
TOOLS = ["npm@10.9.2", "nodejs@22.16.0"]
TIMED_OUT_LINE = "Build was timed out"
GO = "go"  # what _wait says when the build may go on to its planned end


class Gone(Exception):
    """A reset removed the build while it ran."""


class SimulatedBuild:
    def __init__(self, job: Job, runs: Runs, settings: Settings, emulation: Emulation) -> None:
        self.job = job
        self.runs = runs
        self.settings = settings
        self.emulation = emulation
        self.stop_reason: str | None = None
        self.plan = Simulation()
        self.fault: str | None = None
        self._masker = Masker(job.secrets)
        self._seq = 0
        self._pending: list[tuple[int, int, str]] = []
        self.started_ms = 0
        self.generation = emulation.generation(job.account_id)  # taken under the gate

    def _check_current(self) -> None:
        if self.emulation.generation(self.job.account_id) != self.generation:
            raise Gone

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    async def _lines(self, *texts: str) -> None:
        """Kept until the transaction that writes the build's progress: one write for them."""
        at = clock.epoch_ms()
        for text in texts:
            self._pending.append((self._seq, at, self._masker(text)))
            self._seq += 1

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[RunWriter]:
        """Under the gate, one transaction; Gone when a reset has passed since the build began."""
        async with self.emulation.gate:
            self._check_current()
            async with self.runs.writing(self.job) as run:
                yield run

    async def _end(self, run: RunWriter, outcome: str | None) -> None:
        """The lines kept, and the build stopped with `outcome` if it ends here ("": stopped
        through the API already; None: it goes on)."""
        batch, self._pending = self._pending, []
        await run.lines(batch)
        if outcome:
            await run.finish(outcome)

    async def execute(self) -> None:
        with contextlib.suppress(Gone):  # a reset removed the build: nothing left to write
            await self._steps()
        self.emulation.released.pop(self.job.build_uuid, None)
        self.emulation.polls.pop(self.job.build_uuid, None)

    async def _steps(self) -> None:
        """Two transactions after the claim, one each side of the build command's wait; one
        when the plan does not wait (an immediate build): a client polling the build sees it
        stopped a few event-loop steps after its claim, not a dozen commits later."""
        async with self._writing() as run:
            outcome = await self._until_wait(run)
            if outcome is None and self._at_once():
                outcome = await self._after_wait(run)
            await self._end(run, outcome)
        if outcome is not None:
            return
        ended = await self._wait(
            self.plan, timed_out=self.fault == "timeout" or self.plan.outcome == "timeout"
        )
        async with self._writing() as run:
            await self._end(run, await self._after_wait(run) if ended == GO else ended)

    def _at_once(self) -> bool:
        """The plan lets the build go on without waiting (the first look _wait would take)."""
        plan = self.plan
        if self.fault == "timeout" or plan.outcome == "timeout":
            return False
        now = clock.epoch_ms()
        if now >= self.started_ms + self.settings.build_timeout_seconds * 1000:
            return False
        until = self.started_ms + int(plan.seconds * 1000)
        return self._done(plan, now, until, self.emulation.release_event(self.job.build_uuid))

    async def _until_wait(self, run: RunWriter) -> str | None:
        """Everything before the build command's wait; an outcome when the build ends here
        ("" when it was cancelled while initializing: nothing left to finish)."""
        job, trigger = self.job, self.job.trigger
        self._seq = await run.next_log_seq()
        self.plan = plan = self.emulation.plan_for(job.account_id, job.variables)
        self.fault = fault = self.emulation.runner_fault(job.account_id)
        await self._lines(phases.INITIALIZING_LINE, phases.INITIALIZED_LINE)
        if not await run.start_running():
            return ""  # cancelled while initializing
        # Durations and the timeout count from here, as running_on does, whatever the phases
        # before the wait take (a test may move the clock meanwhile).
        self.started_ms = clock.epoch_ms()
        if job.token is None or fault == "token":
            await self._lines(DELETED_CREDENTIAL_LINE)
            return "fail"
        await run.phase(phases.CLONING)
        await self._lines(phases.CLONING_LINE)
        if fault == "clone":
            await self._lines(
                "fatal: could not read from the remote repository (simulated clone failure)",
                phases.failed_line("clone repository"),
            )
            return "fail"
        await run.phase(phases.INSTALLING)
        await self._lines(phases.tools_line(TOOLS), phases.installing_line("npm ci"))
        if fault == "install":
            await self._lines(
                "npm error code ERESOLVE (simulated install failure)",
                phases.failed_line("install"),
            )
            return "fail"
        await run.phase(phases.BUILDING)
        await self._lines(phases.build_line(trigger["build_command"] or "npm run build"))
        if plan.outcome == "invalid":
            await self._lines(
                "buildsd: the trigger's BUILDSD_SIMULATE_* variables are invalid "
                "(docs/testing.md lists their values)",
                phases.failed_line("build command"),
            )
            return "fail"
        if plan.log:
            await self._lines(*plan.log)
        return None

    async def _after_wait(self, run: RunWriter) -> str:
        trigger = self.job.trigger
        if self.plan.outcome == "fail":
            await self._lines(phases.failed_line("build command"))
            return "fail"
        await self._lines(phases.BUILD_DONE_LINE)
        await run.phase(phases.DEPLOYING)
        await self._lines(
            phases.deploy_line(trigger["deploy_command"] or "npx wrangler deploy"),
            phases.DEPLOY_DONE_LINE,
        )
        return "success"

    async def _wait(self, plan: Simulation, *, timed_out: bool) -> str:
        """Until the plan lets the build end (GO); else its outcome ("": cancelled already),
        its last lines kept for the transaction that ends it.

        A timeout plan never ends by itself: it waits for the build's timeout on the virtual
        clock, which a test reaches by advancing it.
        """
        started = self.started_ms
        deadline = started + self.settings.build_timeout_seconds * 1000
        until = started + int(plan.seconds * 1000)
        released = self.emulation.release_event(self.job.build_uuid)
        renew_every = max(0.2, min(1.0, self.settings.lease_seconds / 3))
        last_renew = asyncio.get_running_loop().time()
        while True:
            now = clock.epoch_ms()
            if now >= deadline:
                await self._lines(TIMED_OUT_LINE)  # written with the build's end
                return "terminated"
            if not timed_out and self._done(plan, now, until, released):
                return GO
            loop_now = asyncio.get_running_loop().time()
            due = loop_now - last_renew >= renew_every or self.stop_reason
            if (plan.mode != "immediate" or timed_out) and due:
                async with self.emulation.gate:
                    self._check_current()
                    status = await self.runs.renew(self.job)
                    last_renew = loop_now
                    if status != "running" or self.stop_reason == "shutdown":
                        return await self._stopped(status)
            await asyncio.sleep(TICK_SECONDS)

    def _done(self, plan: Simulation, now: int, until: int, released: asyncio.Event) -> bool:
        if plan.mode == "manual":
            return released.is_set()
        if plan.mode == "polls":
            return self.emulation.polls.get(self.job.build_uuid, 0) >= plan.polls
        return now >= until  # immediate and seconds

    async def _stopped(self, status: str | None) -> str:
        if status is None or status == "stopped":
            # Stopped through the API, which released the lease too (no reaper runs beside
            # simulated builds, so nothing else takes one away).
            await self._lines("Build cancelled.")
            return ""
        await self._lines("Build terminated: the runner was shut down.")
        return "terminated"
