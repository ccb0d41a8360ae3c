"""A bare ASGI callable (no framework) that answers every request with one fixed envelope."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The same shape the real upsert returns: the envelope around a 9-field repo connection.
BODY = json.dumps(
    {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {
            "repo_connection_uuid": "0452a7f0-036b-424b-8540-fe94ca61c45b",
            "provider_type": "github",
            "provider_account_id": "41612145",
            "provider_account_name": "octo",
            "repo_id": "1",
            "repo_name": "repo-1",
            "created_on": "2026-01-01T00:00:00.000Z",
            "modified_on": "2026-01-01T00:00:00.000Z",
            "deleted_on": None,
        },
    },
    separators=(",", ":"),
).encode()

HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole request body (so a PUT costs what it costs), then send BODY."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
