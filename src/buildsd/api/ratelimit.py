"""The rate-limit middleware (D15): counts every /client/v4 request by its credential
(services/rate_limits.py) and answers 429 971 past the limit, with Ratelimit headers always."""

from __future__ import annotations

import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buildsd import clock
from buildsd.api.envelope import JSON, error_body
from buildsd.errors import RateLimited
from buildsd.services.rate_limits import WINDOW_SECONDS, Counter


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
        verdict = await self.counter.hit(credential_key(scope), clock.epoch())
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
