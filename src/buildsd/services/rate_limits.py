"""Rate-limit counters (D15): a sliding window of Cloudflare's 1,200 requests / 300 s per
credential, counted in this process, in Redis, or in PostgreSQL.

The window is the usual two-bucket approximation (this bucket's count plus the previous
bucket's, weighted by how much of it still overlaps the window): O(1) memory per credential.
A request is counted only when allowed. In Redis that is one script a request (reading both
buckets and counting the request); in PostgreSQL a replica counts locally and shares its
counts in the background, leaving the decision to the database only near the limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from buildsd.db import Connection, Database
from buildsd.store import rate_limits

WINDOW_SECONDS = 300
log = logging.getLogger("buildsd.ratelimit")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    reset: int  # seconds until this bucket ends
    retry_after: int  # seconds until one more request would be allowed (when refused)


def overlap(window: int, now: float) -> float:
    """How much of the previous bucket the sliding window still covers at `now`."""
    return 1.0 - (now % window) / window


def judge(limit: int, window: int, now: float, current: float, previous: float) -> Verdict:
    """The verdict on one more request, given the counts of this bucket and the previous."""
    start = now - now % window
    used = previous * overlap(window, now) + current
    reset = max(1, math.ceil(start + window - now))
    if used < limit:
        return Verdict(True, max(0, int(limit - used - 1)), reset, 0)
    if current >= limit or previous <= 0:
        return Verdict(False, 0, reset, reset)
    # previous * (1 - f) + current < limit  ⇔  f > 1 - (limit - current) / previous
    fraction = 1.0 - (limit - current) / previous
    return Verdict(False, 0, reset, max(1, math.ceil(start + fraction * window - now)))


class Counter(Protocol):
    limit: int

    async def hit(self, key: bytes, now: float) -> Verdict: ...
    async def close(self) -> None: ...


def counter(limit: int, redis_url: str, db: Database) -> Counter:
    """Where BUILDSD_RATE_LIMIT is counted (D15): in Redis when BUILDSD_REDIS_URL is set, else
    in PostgreSQL (shared by the replicas), else (SQLite: one process) in this process."""
    if redis_url:
        return RedisWindow(redis_url, limit)
    if db.dialect == "postgresql":
        return DatabaseWindow(db, limit)
    return SlidingWindow(limit)


class _Buckets:
    """Per key, in memory: [bucket start, requests in that bucket, requests in the one before,
    of those in this bucket the ones not yet shared (DatabaseWindow)]."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._entries: dict[bytes, list[float]] = {}

    def get(self, key: bytes) -> list[float] | None:
        return self._entries.get(key)

    def at(self, key: bytes, start: float) -> list[float]:
        """The key's entry for the bucket beginning at `start`, rolled over when it is new."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != start:
            rolled = entry is not None and entry[0] == start - self.window
            previous = entry[1] if entry is not None and rolled else 0.0
            if len(self._entries) > 100_000:  # forget the keys no window covers any more
                for stale in [k for k, v in self._entries.items() if v[0] < start - self.window]:
                    del self._entries[stale]
            entry = self._entries[key] = [start, 0.0, previous, 0.0]
        return entry

    def clear(self) -> None:
        self._entries.clear()


class SlidingWindow:
    """Counters in this process's memory."""

    def __init__(self, limit: int, window: int = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._buckets = _Buckets(window)

    async def hit(self, key: bytes, now: float) -> Verdict:
        """Count a request if it is allowed."""
        entry = self._buckets.at(key, now - now % self.window)
        verdict = judge(self.limit, self.window, now, entry[1], entry[2])
        if verdict.allowed:
            entry[1] += 1
        return verdict

    async def close(self) -> None:
        self._buckets.clear()


# KEYS: this bucket, the previous one. ARGV: limit, overlap of the previous bucket, expiry.
# Counts the request only when allowed; answers both counts as they were before it.
_HIT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * tonumber(ARGV[2]) + current < tonumber(ARGV[1]) then
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {current, previous}
"""


class RedisWindow:
    """The same window with its counters in Redis, shared by every replica. If Redis cannot
    be reached the request is let through (a limiter must not take the API down) and the
    failure logged."""

    def __init__(self, url: str, limit: int, window: int = WINDOW_SECONDS) -> None:
        import redis.asyncio  # only when configured

        self.limit = limit
        self.window = window
        self._client: Any = redis.asyncio.Redis.from_url(url)
        self._script = self._client.register_script(_HIT)

    async def hit(self, key: bytes, now: float) -> Verdict:
        start = int(now - now % self.window)
        name = b"buildsd:rl:" + key.hex().encode()
        try:
            current, previous = await self._script(
                keys=[name + b":%d" % start, name + b":%d" % (start - self.window)],
                args=[self.limit, overlap(self.window, now), 2 * self.window],
            )
        except Exception as exc:
            log.warning("rate-limit counters unreachable, request let through: %s", exc)
            return Verdict(True, self.limit, self.window, 0)
        return judge(self.limit, self.window, now, float(current), float(previous))

    async def close(self) -> None:
        await self._client.aclose()


class DatabaseWindow:
    """The same window with its counters in PostgreSQL, shared by every replica.

    Counting in the database on every request halved the API's throughput (a pool round trip
    a request), so a replica counts locally and shares its counts in the background: every
    SYNC_SECONDS one statement adds what it let through and answers the shared totals. While
    a credential is far from its limit that is all; within `headroom` of it, each request is
    decided by the database itself (the replica's counts sent first, then one conditional
    upsert re-checked under the bucket's row lock). So across replicas the limit can be passed
    only by what the others let through, unseen, in one sync, and within one replica never.
    Fails open like RedisWindow.
    """

    SYNC_SECONDS = 0.1

    def __init__(
        self,
        db: Database,
        limit: int,
        window: int = WINDOW_SECONDS,
        sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        self.limit = limit
        self.window = window
        self.headroom = max(10, limit // 10)
        self._db = db
        self._sync_seconds = sync_seconds
        # A bucket's count is the shared count as last learnt plus this replica's unsent ones.
        self._buckets = _Buckets(window)
        self._unsent: dict[tuple[bytes, int], int] = {}
        self._syncer: asyncio.Task[None] | None = None
        self._pruned_before = 0  # the buckets before this start are gone (this replica's view)

    async def hit(self, key: bytes, now: float) -> Verdict:
        start = int(now - now % self.window)
        entry = self._buckets.at(key, start)
        if entry[2] * overlap(self.window, now) + entry[1] >= self.limit - self.headroom:
            return await self._hit_shared(key, now, start)
        entry[1] += 1
        entry[3] += 1
        self._unsent[(key, start)] = self._unsent.get((key, start), 0) + 1
        if self._syncer is None:
            self._syncer = asyncio.create_task(self._sync_while_unsent())
        return judge(self.limit, self.window, now, entry[1] - 1, entry[2])

    async def _hit_shared(self, key: bytes, now: float, start: int) -> Verdict:
        """Near the limit: the database decides (after this replica's counts are in)."""
        try:
            async with self._db.connection() as conn:
                await self._share(conn)
                current, previous, counted = await rate_limits.hit(
                    conn, key.hex(), start, self.window, overlap(self.window, now), self.limit
                )
        except Exception as exc:
            log.warning("rate-limit counters unreachable, request let through: %s", exc)
            return Verdict(True, self.limit, self.window, 0)
        entry = self._buckets.at(key, start)
        entry[1] = current + (1 if counted else 0) + entry[3]  # + what came in meanwhile
        entry[2] = previous
        verdict = judge(self.limit, self.window, now, float(current), float(previous))
        if not counted and verdict.allowed:
            # Refused under the row lock, while the snapshot saw an older count: a request
            # racing this one took the last place.
            return Verdict(False, 0, verdict.reset, 1)
        return verdict

    async def _sync_while_unsent(self) -> None:
        try:
            while self._unsent:
                await asyncio.sleep(self._sync_seconds)
                await self.sync()
        finally:
            self._syncer = None

    async def sync(self) -> None:
        """Share this replica's counts and learn the shared totals (on a connection of its own)."""
        if not self._unsent:
            return
        try:
            async with self._db.connection() as conn:
                await self._share(conn)
        except Exception as exc:
            log.warning("rate-limit counters unreachable, counts not shared: %s", exc)

    async def _share(self, conn: Connection) -> None:
        """Add this replica's unsent counts to the shared ones; learn the shared totals. Counts
        the database did not take stay counted here (a replica still limits on its own)."""
        if not self._unsent:
            return
        sent, self._unsent = self._unsent, {}
        await self._prune(conn, max(start for _, start in sent))
        totals = await rate_limits.add(
            conn, [(key.hex(), start, hits) for (key, start), hits in sent.items()]
        )
        for (key, start), hits in sent.items():
            entry = self._buckets.get(key)
            if entry is not None and entry[0] == start:
                entry[3] -= hits
                entry[1] = totals[(key.hex(), start)] + entry[3]

    async def _prune(self, conn: Connection, start: int) -> None:
        """Once a bucket, per replica: forget the buckets that no longer count at `start`."""
        if self._pruned_before < start - self.window:
            self._pruned_before = start - self.window
            await rate_limits.prune(conn, self._pruned_before)

    async def close(self) -> None:
        """Share what is left to share (the database is the services': closed after this)."""
        if self._syncer is not None:
            self._syncer.cancel()
        await self.sync()
