"""Per-credential rate limiting (D15): a sliding window of Cloudflare's 1,200 requests / 300 s.

The window is the usual two-bucket approximation (this bucket's count plus the previous
bucket's, weighted by how much of it still overlaps the window): O(1) memory per credential.
Counters live in this process, or with BUILDSD_REDIS_URL in Redis, shared by every replica
(one round trip a request: a script that reads both buckets and counts the request).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buildsd.api.envelope import JSON, error_body
from buildsd.errors import RateLimited

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


def counter(limit: int, redis_url: str) -> Counter:
    """Where BUILDSD_RATE_LIMIT is counted: Redis when BUILDSD_REDIS_URL is set (D15)."""
    return RedisWindow(redis_url, limit) if redis_url else SlidingWindow(limit)


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


def credential_key(scope: Scope) -> bytes:
    """A digest of the credential the request presents, or of the client address."""
    parts = [value for name, value in scope["headers"] if name in _CREDENTIAL_HEADERS]
    if not parts:
        client = scope.get("client")
        parts = [str(client[0] if client else "").encode()]
    return hashlib.blake2b(b"\0".join(sorted(parts)), digest_size=16).digest()


_CREDENTIAL_HEADERS = {b"authorization", b"x-auth-key", b"x-auth-email"}


class RateLimitMiddleware:
    """Counts every /client/v4 request and adds Ratelimit and Ratelimit-Policy headers."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter
        self.policy = f'"burst";q={counter.limit};w={WINDOW_SECONDS}'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/client/v4"):
            await self.app(scope, receive, send)
            return
        verdict = await self.counter.hit(credential_key(scope), time.time())
        limit_headers = [
            (b"ratelimit", f'"default";r={verdict.remaining};t={verdict.reset}'.encode()),
            (b"ratelimit-policy", self.policy),
        ]
        if not verdict.allowed:
            error = RateLimited(verdict.retry_after)
            body = error_body(error)
            await send(
                {
                    "type": "http.response.start",
                    "status": error.status,
                    "headers": [
                        (b"content-type", JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", error.headers["Retry-After"].encode()),
                        *limit_headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
