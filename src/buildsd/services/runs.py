"""The runner's side of a build: claim it, hold its lease, record its progress, finish it.

Runners reach data only through this service (DESIGN.md, after Woodpecker's agent).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Connection, Database, IntegrityError, Row
from buildsd.logs import AccessLog
from buildsd.services.build_tokens import BuildTokens
from buildsd.services.metrics import Metrics
from buildsd.services.triggers import Triggers
from buildsd.store import accounts, builds, previews, runs, triggers, workers


class LeaseLost(Exception):
    """Another runner holds the build now: this one's lease lapsed (the process was frozen, say)
    and the build was taken over. Nothing more is this runner's to write."""


@dataclass
class Job:
    """Everything a runner needs to run one build, decrypted."""

    build: Row
    trigger: Row
    token: str | None  # None: the build token was deleted (D19)
    variables: dict[str, tuple[str, bool]]  # name → (value, is_secret)
    owner: str
    secrets: list[str] = field(default_factory=list)
    worker_name: str = ""  # the connected Worker's (WRANGLER_CI_OVERRIDE_NAME)
    preview: bool = False  # a Worker Preview's build (WRANGLER_CI_GENERATE_PREVIEW_ALIAS)

    @property
    def build_uuid(self) -> str:
        return str(self.build["build_uuid"])

    @property
    def account_id(self) -> str:
        return str(self.build["account_id"])


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _after(seconds: float) -> str:
    return clock.format_epoch_ms(clock.epoch_ms() + int(seconds * 1000))


class Runs:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        tokens: BuildTokens,
        trigger_service: Triggers,
        metrics: Metrics,
        access_log: AccessLog,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._log = access_log
        self._settings = settings
        self._tokens = tokens
        self._triggers = trigger_service
        self._waiter: asyncio.Future[None] | None = None  # the runner's, while it waits
        self._woken = False  # notified while the runner was not waiting

    # --- waking a runner in this process when a build is queued ---------------------------

    def notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        else:
            self._woken = True

    async def wait_for_work(self, timeout: float) -> None:
        """Until notify() or `timeout`. A future of its own, not wait_for(Event.wait()): the
        runner resumes in the loop's next step rather than three (a task, its done callback,
        wait_for's own future), each of which lets a waiting request go first."""
        if self._woken:
            self._woken = False
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._woken = False

    # --- the lifecycle --------------------------------------------------------------------

    async def claim(self, owner: str) -> Job | None:
        """The next queued build this runner may start (per-account limit), leased to it."""
        # A runner looks again after each claim and each build it ends, mostly to find the
        # queue empty: a read says so without a write transaction (and its commit).
        async with self._db.connection() as conn:
            if not await runs.any_queued(conn):
                return None
        async with self._db.transaction(exclusive=True) as conn:
            build = await runs.claim(
                conn,
                owner=owner,
                now=clock.now(),
                lease_until=_after(self._settings.lease_seconds),
                limit=self._settings.max_concurrent_builds_per_account,
            )
            if build is None:
                return None
            waited = clock.parse(build["initializing_on"]) - clock.parse(build["created_on"])
            self._metrics.queue_wait.observe(waited.total_seconds())
            await runs.add_event(conn, build["build_uuid"], "initializing", clock.now())
            trigger = await triggers.get_any(conn, build["trigger_uuid"])
            variables = await self._triggers.plain_variables(conn, build["trigger_uuid"])
            worker = await workers.find_by_tag(
                conn, build["account_id"], trigger["external_script_id"]
            )
            preview = await previews.owns(conn, build["trigger_uuid"])
        self._log.build_state(
            build["build_uuid"], build["account_id"], "initializing", runner=owner
        )
        token = await self._tokens.secret(build["account_id"], build["build_token_uuid"])
        secrets = [value for value, is_secret in variables.values() if is_secret]
        if token:
            secrets.append(token)
        name = worker["name"] if worker is not None else trigger["external_script_id"]
        return Job(
            build, trigger, token, variables, owner, secrets, worker_name=name, preview=preview
        )

    async def renew(self, job: Job) -> str | None:
        """Extend the lease; the build's status now (stopped = cancelled by the API), or None
        when another process has taken the build away (its lease had lapsed)."""
        async with self._db.connection() as conn:
            return await runs.renew(
                conn, job.build_uuid, job.owner, _after(self._settings.lease_seconds)
            )

    def writing(self, job: Job) -> AbstractAsyncContextManager[RunWriter]:
        """One transaction for several steps of `job`'s run (RunWriter); raises LeaseLost when
        another process took the build over (it numbered lines or events of it)."""
        return _writing(self._db, self, job)

    async def start_running(self, job: Job) -> bool:
        async with self.writing(job) as run:
            return await run.start_running()

    async def phase(self, job: Job, type_: str) -> None:
        """End the current phase and start the next (the logs' `events`)."""
        async with self.writing(job) as run:
            await run.phase(type_)

    async def record(self, job: Job, **values: str | None) -> None:
        async with self._db.transaction() as conn:
            await runs.record(conn, job.build_uuid, values)

    async def finish(self, job: Job, outcome: str) -> bool:
        """Stop the build with `outcome` unless it was stopped already (cancelled)."""
        async with self.writing(job) as run:
            return await run.finish(outcome)

    def _running(self, job: Job) -> None:
        self._log.build_state(job.build_uuid, job.account_id, "running", runner=job.owner)

    def _stopped(self, job: Job, outcome: str, duration: int | None) -> None:
        self._log.build_state(
            job.build_uuid, job.account_id, "stopped", outcome=outcome, duration_ms=duration
        )
        self._metrics.builds_finished[outcome] += 1
        if duration is not None:
            self._metrics.build_duration.observe(duration / 1000)

    # --- logs -------------------------------------------------------------------------------

    async def next_log_seq(self, build_uuid: str) -> int:
        async with self._db.connection() as conn:
            return await runs.next_log_seq(conn, build_uuid)

    async def append_lines(self, build_uuid: str, lines: list[tuple[int, int, str]]) -> None:
        """Store already-masked lines: (seq, epoch_ms, text). Raises LeaseLost when another
        process numbered lines of this build (it took the build over)."""
        if lines:
            try:
                async with self._db.transaction() as conn:
                    await runs.append_lines(conn, build_uuid, lines)
            except IntegrityError as exc:
                raise LeaseLost(build_uuid) from exc

    async def log(self, build_uuid: str, text: str) -> None:
        """One line of buildsd's own (not a command's output)."""
        seq = await self.next_log_seq(build_uuid)
        await self.append_lines(build_uuid, [(seq, clock.epoch_ms(), text)])

    # --- the sandbox and what a killed runner left ----------------------------------------------

    async def several_accounts(self) -> bool:
        async with self._db.connection() as conn:
            return await accounts.several(conn)

    async def running_among(self, build_uuids: list[str]) -> set[str]:
        async with self._db.connection() as conn:
            return await runs.running_among(conn, build_uuids)

    # --- lost runners -------------------------------------------------------------------------

    async def reap(self) -> list[str]:
        """Stop every build whose lease lapsed as `terminated`, saying why in its log."""
        stopped = []
        async with self._db.transaction(exclusive=True) as conn:
            now = clock.now()
            for row in await runs.expired(conn, now):
                if await builds.stop(
                    conn, row["build_uuid"], outcome="terminated", now=now, duration_ms=None
                ):
                    # The lapsed runner, should it wake, must see the build is no longer its.
                    await runs.release(conn, row["build_uuid"])
                    await runs.end_events(conn, row["build_uuid"], now)
                    seq = await runs.next_log_seq(conn, row["build_uuid"])
                    text = (
                        f"Build terminated: its runner ({row['lease_owner']}) stopped renewing "
                        f"its lease at {row['lease_expires_on']} (process killed or machine lost)."
                    )
                    await runs.append_lines(
                        conn, row["build_uuid"], [(seq, clock.epoch_ms(), text)]
                    )
                    stopped.append(str(row["build_uuid"]))
                    self._log.build_state(
                        row["build_uuid"],
                        row["account_id"],
                        "stopped",
                        outcome="terminated",
                        reason="lease lapsed",
                    )
        self._metrics.builds_finished["terminated"] += len(stopped)
        return stopped

    async def gauges(self) -> dict[str, tuple[str, float]]:
        async with self._db.connection() as conn:
            counts = await runs.unfinished_counts(conn)
        return {
            "buildsd_build_queue_depth": (
                "Builds queued, waiting for a runner",
                counts.get("queued", 0),
            ),
            "buildsd_builds_running": (
                "Builds initializing or running",
                counts.get("initializing", 0) + counts.get("running", 0),
            ),
        }


class RunWriter:
    """Steps of one run written in one transaction (Runs.writing): what the simulated runner did
    between two waits commits at once, an immediate build in one transaction after its claim,
    rather than one a step. Runs.start_running, phase and finish are one-step writers, so both
    runners take the same path. The access log and metrics hear of a step once it commits."""

    def __init__(self, runs: Runs, conn: Connection, job: Job) -> None:
        self._runs = runs
        self._conn = conn
        self.job = job
        self._events: list[tuple[str, str]] = []  # phases begun: (type, started_on)

    async def next_log_seq(self) -> int:
        return await runs.next_log_seq(self._conn, self.job.build_uuid)

    async def lines(self, lines: list[tuple[int, int, str]]) -> None:
        """Already-masked lines: (seq, epoch_ms, text)."""
        if lines:
            await runs.append_lines(self._conn, self.job.build_uuid, lines)

    async def start_running(self) -> bool:
        """initializing → running; False when the build is no longer this runner's to run
        (cancelled meanwhile)."""
        job = self.job
        started = await runs.set_running(self._conn, job.build_uuid, job.owner, clock.now())
        if started:
            self._conn.after_commit(lambda: self._runs._running(job))
        return started

    async def phase(self, type_: str) -> None:
        """End the current phase and start the next (the logs' `events`). Kept until the
        writer's end (or finish): the phases of one transaction are one batch, not three
        statements each (on PostgreSQL each is a round trip)."""
        self._events.append((type_, clock.now()))

    async def flush(self) -> None:
        """Write the phases kept: the one open before ends as the first of them starts."""
        events, self._events = self._events, []
        if events:
            await runs.end_events(self._conn, self.job.build_uuid, events[0][1])
            await runs.add_events(self._conn, self.job.build_uuid, events)

    async def finish(self, outcome: str) -> bool:
        """Stop the build with `outcome` unless it was stopped already (cancelled)."""
        await self.flush()
        conn, job = self._conn, self.job
        now = clock.now()
        row = await builds.get(conn, job.account_id, job.build_uuid)
        started = row["running_on"] or row["initializing_on"]
        duration = None
        if started is not None:
            elapsed = clock.parse(now) - clock.parse(started)
            duration = max(0, int(elapsed.total_seconds() * 1000))
        await runs.end_events(conn, job.build_uuid, now)
        stopped = await builds.stop(
            conn, job.build_uuid, outcome=outcome, now=now, duration_ms=duration
        )
        if stopped:
            conn.after_commit(lambda: self._runs._stopped(job, outcome, duration))
        return stopped


@contextlib.asynccontextmanager
async def _writing(db: Database, runs_: Runs, job: Job) -> AsyncIterator[RunWriter]:
    try:
        async with db.transaction() as conn:
            writer = RunWriter(runs_, conn, job)
            yield writer
            await writer.flush()
    except IntegrityError as exc:  # a line or event numbered by another runner
        raise LeaseLost(job.build_uuid) from exc
