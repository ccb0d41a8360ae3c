"""Rate-limit counters (D15): a sliding window of Cloudflare's 1,200 requests / 300 s per
credential, counted in this process, in Redis, or in PostgreSQL.

The window is the usual two-bucket approximation (this bucket's count plus the previous
bucket's, weighted by how much of it still overlaps the window): O(1) memory per credential.
A request is counted only when allowed. Shared counters cost one round trip a request: a Redis
script, or one SQL statement, each reading both buckets and counting the request.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from buildsd.db import Database
from buildsd.store import rate_limits

WINDOW_SECONDS = 300
log = logging.getLogger("buildsd.ratelimit")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    reset: int  # seconds until this bucket ends
    retry_after: int  # seconds until one more request would be allowed (when refused)


def judge(limit: int, window: int, now: float, current: float, previous: float) -> Verdict:
    """The verdict on one more request, given the counts of this bucket and the previous."""
    start = now - now % window
    overlap = 1.0 - (now - start) / window
    used = previous * overlap + current
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


class SlidingWindow:
    """Counters in this process's memory."""

    def __init__(self, limit: int, window: int = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        # key → [bucket start, count in this bucket, count in the previous bucket]
        self._buckets: dict[bytes, list[float]] = {}

    async def hit(self, key: bytes, now: float) -> Verdict:
        """Count a request if it is allowed."""
        start = now - now % self.window
        entry = self._buckets.get(key)
        if entry is None or entry[0] != start:
            previous = entry[1] if entry is not None and entry[0] == start - self.window else 0.0
            if len(self._buckets) > 100_000:
                self._prune(start)
            entry = self._buckets[key] = [start, 0.0, previous]
        verdict = judge(self.limit, self.window, now, entry[1], entry[2])
        if verdict.allowed:
            entry[1] += 1
        return verdict

    async def close(self) -> None:
        self._buckets.clear()

    def _prune(self, start: float) -> None:
        stale = [k for k, v in self._buckets.items() if v[0] < start - self.window]
        for key in stale:
            del self._buckets[key]


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
        overlap = 1.0 - (now - start) / self.window
        try:
            current, previous = await self._script(
                keys=[name + b":%d" % start, name + b":%d" % (start - self.window)],
                args=[self.limit, overlap, 2 * self.window],
            )
        except Exception as exc:
            log.warning("rate-limit counters unreachable, request let through: %s", exc)
            return Verdict(True, self.limit, self.window, 0)
        return judge(self.limit, self.window, now, float(current), float(previous))

    async def close(self) -> None:
        await self._client.aclose()


class DatabaseWindow:
    """The same window with its counters in the database (PostgreSQL), shared by every replica:
    one statement a request (store.rate_limits). Fails open like RedisWindow."""

    def __init__(self, db: Database, limit: int, window: int = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._db = db
        self._pruned_before = 0  # the buckets before this one are gone (this process's view)

    async def hit(self, key: bytes, now: float) -> Verdict:
        start = int(now - now % self.window)
        overlap = 1.0 - (now - start) / self.window
        try:
            async with self._db.connection() as conn:
                if self._pruned_before < start - self.window:  # once a bucket, per replica
                    self._pruned_before = start - self.window
                    await rate_limits.prune(conn, self._pruned_before)
                current, previous, counted = await rate_limits.hit(
                    conn, key.hex(), start, self.window, overlap, self.limit
                )
        except Exception as exc:
            log.warning("rate-limit counters unreachable, request let through: %s", exc)
            return Verdict(True, self.limit, self.window, 0)
        verdict = judge(self.limit, self.window, now, float(current), float(previous))
        if not counted and verdict.allowed:
            # Refused under the row lock, while the snapshot saw an older count: a request
            # racing this one took the last place.
            return Verdict(False, 0, verdict.reset, 1)
        return verdict

    async def close(self) -> None:
        """Nothing to close: the database is the services'."""
