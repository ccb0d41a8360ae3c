"""The outbox's sender: claims due forge updates, sends each through its forge's module, and
records the answer; started beside the runner by `serve` and `worker`, never in a build's way."""

from __future__ import annotations

import asyncio
import contextlib
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
BATCH = 32  # updates in flight at once per sender (each of a different build)


class Sender:
    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self._outbox = outbox
        self._settings = settings

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping`: send what is due, else wait a poll interval."""
        async with httpx.AsyncClient(
            timeout=self._settings.forge_timeout_seconds, follow_redirects=False
        ) as client:
            while not stopping.is_set():
                try:
                    sent = await self.once(client)
                except Exception:  # the database away, say: try again next round
                    log.exception("outbox: claiming updates failed")
                    sent = 0
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), self._settings.outbox_poll_seconds)

    async def once(self, client: httpx.AsyncClient) -> int:
        """One round: claim a batch and send it; how many were claimed."""
        deliveries = await self._outbox.claim(BATCH)
        await asyncio.gather(*(self._send(client, d) for d in deliveries))
        return len(deliveries)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        where = {"build_uuid": delivery.row["build_uuid"], "forge": delivery.row["forge"]}
        try:
            comment_id = await FORGES[str(delivery.row["forge"])](client, delivery)
        except (ForgeError, httpx.HTTPError, ValueError, KeyError) as exc:
            # ValueError/KeyError: a 2xx answer without the JSON a forge documents.
            error = str(exc) or type(exc).__name__
            permanent = isinstance(exc, ForgeError) and exc.permanent
            gave_up = await self._outbox.failed(delivery, error, permanent=permanent)
            log.warning(
                "outbox: forge update failed", extra={**where, "error": error, "gave_up": gave_up}
            )
            return
        await self._outbox.delivered(delivery, comment_id)
