"""Per-credential rate limiting (D15): a sliding window of Cloudflare's 1,200 requests / 300 s.

The window is the usual two-bucket approximation (this bucket's count plus the previous
bucket's, weighted by how much of it still overlaps the window): O(1) memory per credential.
Counters live in this process; see docs/scaling.md for replicas.
"""

from __future__ import annotations

import hashlib
import math
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buildsd.api.envelope import JSON, error_body
from buildsd.errors import RateLimited

WINDOW_SECONDS = 300


class SlidingWindow:
    def __init__(self, limit: int, window: int = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        # key → [bucket start, count in this bucket, count in the previous bucket]
        self._buckets: dict[bytes, list[float]] = {}

    def hit(self, key: bytes, now: float) -> tuple[bool, int, int]:
        """Count a request; returns (allowed, remaining, seconds until the bucket resets)."""
        start = now - now % self.window
        entry = self._buckets.get(key)
        if entry is None or entry[0] != start:
            previous = entry[1] if entry is not None and entry[0] == start - self.window else 0.0
            if len(self._buckets) > 100_000:
                self._prune(start)
            entry = self._buckets[key] = [start, 0.0, previous]
        overlap = 1.0 - (now - start) / self.window
        used = entry[2] * overlap + entry[1]
        reset = max(1, math.ceil(start + self.window - now))
        if used >= self.limit:
            return False, 0, reset
        entry[1] += 1
        return True, max(0, int(self.limit - used - 1)), reset

    def retry_after(self, key: bytes, now: float) -> int:
        """Seconds until one more request would be allowed."""
        start, current, previous = self._buckets[key]
        if current >= self.limit or previous <= 0:
            return max(1, math.ceil(start + self.window - now))
        # previous * (1 - f) + current < limit  ⇔  f > 1 - (limit - current) / previous
        fraction = 1.0 - (self.limit - current) / previous
        return max(1, math.ceil(start + fraction * self.window - now))

    def _prune(self, start: float) -> None:
        stale = [k for k, v in self._buckets.items() if v[0] < start - self.window]
        for key in stale:
            del self._buckets[key]


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

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.window = SlidingWindow(limit)
        self.policy = f'"burst";q={limit};w={WINDOW_SECONDS}'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/client/v4"):
            await self.app(scope, receive, send)
            return
        key = credential_key(scope)
        now = time.time()
        allowed, remaining, reset = self.window.hit(key, now)
        limit_headers = [
            (b"ratelimit", f'"default";r={remaining};t={reset}'.encode()),
            (b"ratelimit-policy", self.policy),
        ]
        if not allowed:
            error = RateLimited(self.window.retry_after(key, now))
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
