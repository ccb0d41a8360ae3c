"""The runner's side of a build: claim it, hold its lease, record its progress, finish it.

Runners reach data only through this service (DESIGN.md, after Woodpecker's agent).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Database, IntegrityError, Row
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
        self._wake = asyncio.Event()

    # --- waking a runner in this process when a build is queued ---------------------------

    def notify(self) -> None:
        self._wake.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # --- the lifecycle --------------------------------------------------------------------

    async def claim(self, owner: str) -> Job | None:
        """The next queued build this runner may start (per-account limit), leased to it."""
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

    async def start_running(self, job: Job) -> bool:
        async with self._db.transaction() as conn:
            started = await runs.set_running(conn, job.build_uuid, job.owner, clock.now())
        if started:
            self._log.build_state(job.build_uuid, job.account_id, "running", runner=job.owner)
        return started

    async def phase(self, job: Job, type_: str) -> None:
        """End the current phase and start the next (the logs' `events`)."""
        async with self._db.transaction() as conn:
            now = clock.now()
            await runs.end_events(conn, job.build_uuid, now)
            await runs.add_event(conn, job.build_uuid, type_, now)

    async def record(self, job: Job, **values: str | None) -> None:
        async with self._db.transaction() as conn:
            await runs.record(conn, job.build_uuid, values)

    async def finish(self, job: Job, outcome: str) -> bool:
        """Stop the build with `outcome` unless it was stopped already (cancelled)."""
        async with self._db.transaction() as conn:
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
            self._log.build_state(
                job.build_uuid, job.account_id, "stopped", outcome=outcome, duration_ms=duration
            )
            self._metrics.builds_finished[outcome] += 1
            if duration is not None:
                self._metrics.build_duration.observe(duration / 1000)
        return stopped

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
