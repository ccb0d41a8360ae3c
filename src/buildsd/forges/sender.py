"""The outbox's sender: claims due forge updates, sends each through its forge's module, and
records the answer; started beside the runner by `serve` and `worker`, never in a build's way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx

from buildsd.config import Settings
from buildsd.forges import events, gitea, github, gitlab
from buildsd.forges.text import ForgeError
from buildsd.services.outbox import Delivery, Outbox

log = logging.getLogger("buildsd.forges")

Send = Callable[[httpx.AsyncClient, Delivery], Awaitable[str | None]]
FORGES: dict[str, Send] = {
    "github": github.send,
    "gitlab": gitlab.send,
    "gitea": gitea.send,
    "event": events.send,
}
BATCH = 32  # updates in flight at once per sender (at most one per build and target)


class Sender:
    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self._outbox = outbox
        self._settings = settings
        # The sender's database work goes one statement group at a time: with 32 sends in
        # flight it must not take the pool's connections from the builds it reports on.
        self._db_turn = asyncio.Lock()

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping`: keep up to BATCH updates in flight, claiming more as sends end
        (a slow forge holds one slot, not a round); idle, look again every poll interval."""
        in_flight: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(
            timeout=self._settings.forge_timeout_seconds, follow_redirects=False
        ) as client:
            while not stopping.is_set():
                claimed = (
                    await self._claim(BATCH - len(in_flight)) if len(in_flight) < BATCH else []
                )
                in_flight |= {asyncio.create_task(self._send(client, d)) for d in claimed}
                if claimed:
                    continue
                stop = asyncio.ensure_future(stopping.wait())
                done, _ = await asyncio.wait(
                    [*in_flight, stop],
                    timeout=self._settings.outbox_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stop.cancel()
                in_flight -= done
            if in_flight:  # what is under way is finished, not dropped (its lease would lapse)
                await asyncio.wait(in_flight)

    async def _claim(self, limit: int) -> list[Delivery]:
        try:
            async with self._db_turn:
                return await self._outbox.claim(limit)
        except Exception:  # the database away, say: try again next round
            log.exception("outbox: claiming updates failed")
            return []

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        where = {"build_uuid": delivery.row["build_uuid"], "forge": delivery.row["forge"]}
        try:
            comment_id = await FORGES[str(delivery.row["forge"])](client, delivery)
        except (ForgeError, httpx.HTTPError, ValueError, KeyError) as exc:
            # ValueError/KeyError: a 2xx answer without the JSON a forge documents.
            error = str(exc) or type(exc).__name__
            permanent = isinstance(exc, ForgeError) and exc.permanent
            async with self._db_turn:
                gave_up = await self._outbox.failed(delivery, error, permanent=permanent)
            log.warning(
                "outbox: forge update failed", extra={**where, "error": error, "gave_up": gave_up}
            )
            return
        async with self._db_turn:
            await self._outbox.delivered(delivery, comment_id)
