"""Pruning stored webhook deliveries past BUILDSD_WEBHOOK_DELIVERY_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import time

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Database
from buildsd.store import webhook_deliveries

log = logging.getLogger("buildsd.webhooks")

# The matcher (services/webhooks.py) deletes PRUNE_BATCH deliveries per pass, every
# PRUNE_SECONDS, and on its next pass again while a batch comes back full: a short
# transaction each, so a backlog never holds up matching or the intake for long.
PRUNE_BATCH = 500
PRUNE_SECONDS = 60.0
DAY_MS = 86_400_000


class Retention:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._days = settings.webhook_delivery_retention_days
        self._done_at: float | None = None  # loop time of the last pass that left none behind

    async def prune_when_due(self) -> None:
        """One batch, if PRUNE_SECONDS passed since a pass found nothing more to delete."""
        now = asyncio.get_running_loop().time()
        if self._done_at is None or now - self._done_at >= PRUNE_SECONDS:
            self._done_at = None if await self.prune() == PRUNE_BATCH else now

    async def prune(self, limit: int = PRUNE_BATCH) -> int:
        """Delete up to `limit` deliveries matched more than the retention ago, oldest first,
        with every account's decisions on them; how many. An unmatched delivery stays."""
        if self._days <= 0:
            return 0  # kept forever
        before = clock.format_epoch_ms(time.time_ns() // 1_000_000 - self._days * DAY_MS)
        async with self._db.transaction() as conn:
            found = await webhook_deliveries.matched_before(conn, before, limit)
            await webhook_deliveries.delete(conn, found)
        if found:
            log.info("pruned %d webhook deliveries matched before %s", len(found), before)
        return len(found)
