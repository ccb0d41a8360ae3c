"""The outbox's sender: claims due forge updates, sends each through its forge's module, and
records the answer; started beside the runner by `serve` and `worker`, never in a build's way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx

from buildsd import clock
from buildsd.config import Settings
from buildsd.forges import events, gitea, github, gitlab
from buildsd.forges.github_app import Installations
from buildsd.forges.text import ForgeError
from buildsd.services.outbox import PRUNE_BATCH, Delivery, Outbox, Outcome, Sent

log = logging.getLogger("buildsd.forges")

Send = Callable[[httpx.AsyncClient, Delivery], Awaitable[Sent]]
FORGES: dict[str, Send] = {
    "github": github.send,
    "gitlab": gitlab.send,
    "gitea": gitea.send,
    "event": events.send,
}
BATCH = 32  # updates in flight at once per sender (at most one per build and target)
# Settled rows past the retention are pruned a batch at a time, every PRUNE_SECONDS on the
# clock (the virtual one moves it too), again at once while a batch comes back full.
PRUNE_SECONDS = 60.0
# After a send ends, how long the sender waits for others ending to record them together (one
# transaction for several answers; 0.05 s more before a build's next update, at most).
SETTLE_SECONDS = 0.05


def _outcomes(tasks: set[asyncio.Task[Outcome]]) -> list[Outcome]:
    found = []
    for task in tasks:
        try:
            found.append(task.result())
        except Exception:  # a bug, not the forge: its lease lapses and it is tried again
            log.exception("outbox: sending an update failed")
    return found


class Sender:
    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self._outbox = outbox
        self._settings = settings
        # The sender's database work goes one statement group at a time: with 32 sends in
        # flight it must not take the pool's connections from the builds it reports on.
        self._db_turn = asyncio.Lock()
        self._installations = Installations()
        self._pruned_at: float | None = None  # clock time of a pass that left none behind

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping`: keep up to BATCH updates in flight, claiming more as sends end
        (a slow forge holds one slot, not a round), each claim recording the sends ended
        since; idle, look again every poll interval."""
        in_flight: set[asyncio.Task[Outcome]] = set()
        settled: list[Outcome] = []
        async with httpx.AsyncClient(
            timeout=self._settings.forge_timeout_seconds, follow_redirects=False
        ) as client:
            while not stopping.is_set():
                room = BATCH - len(in_flight)
                claimed = await self._claim(room, settled) if room > 0 or settled else []
                if claimed is None:  # not recorded: kept for the next round
                    claimed = []
                else:
                    settled = []
                in_flight |= {asyncio.create_task(self._send(client, d)) for d in claimed}
                if claimed and len(claimed) == room:
                    continue  # more may be due
                if not claimed and room > 0:  # nothing due: time to prune, if it is due
                    await self._prune_when_due()
                stop = asyncio.ensure_future(stopping.wait())
                done, _ = await asyncio.wait(
                    [*in_flight, stop],
                    timeout=self._settings.outbox_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stop.cancel()
                if done - {stop}:  # gather the sends ending just after, for one transaction
                    await asyncio.sleep(SETTLE_SECONDS)
                ended = {task for task in in_flight if task.done()}
                settled += _outcomes(ended)
                in_flight -= ended
            if in_flight:  # what is under way is finished, not dropped (its lease would lapse)
                await asyncio.wait(in_flight)
                settled += _outcomes(in_flight)
            if settled:
                await self._claim(0, settled)

    async def _claim(self, limit: int, settled: list[Outcome]) -> list[Delivery] | None:
        try:
            async with self._db_turn:
                return await self._outbox.claim(limit, settled)
        except Exception:  # the database away, say: try again next round
            log.exception("outbox: claiming updates failed")
            return None

    async def _prune_when_due(self) -> None:
        """One batch when due: never while updates are due (claims come first)."""
        now = clock.epoch()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_SECONDS:
            return
        try:
            async with self._db_turn:
                pruned = await self._outbox.prune()
        except Exception:  # the database away, say: next time
            log.exception("outbox: pruning failed")
            return
        if pruned:
            log.info("outbox: pruned %d settled updates past the retention", pruned)
        self._pruned_at = None if pruned == PRUNE_BATCH else now

    def _forge(self, delivery: Delivery) -> Send:
        if delivery.row["forge"] == "github" and delivery.app_id is not None:
            return lambda client, d: github.send_checks(client, d, self._installations)
        return FORGES[str(delivery.row["forge"])]

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> Outcome:
        where = {"build_uuid": delivery.row["build_uuid"], "forge": delivery.row["forge"]}
        try:
            sent = await self._forge(delivery)(client, delivery)
        except (ForgeError, httpx.HTTPError, ValueError, KeyError) as exc:
            # ValueError/KeyError: a 2xx answer without the JSON a forge documents.
            error = str(exc) or type(exc).__name__
            permanent = isinstance(exc, ForgeError) and exc.permanent
            gives_up = self._outbox.gives_up(delivery, permanent)
            log.warning(
                "outbox: forge update failed", extra={**where, "error": error, "gave_up": gives_up}
            )
            return Outcome(delivery, error=error, permanent=permanent)
        return Outcome(delivery, sent=sent)
