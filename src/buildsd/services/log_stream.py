"""A build's log lines as Server-Sent Events, for the API's stream and the dashboard's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from buildsd.services.builds import Builds
from buildsd.wire import encoder

STREAM_POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0


async def open_stream(
    builds_service: Builds, account_id: str, build_uuid: str, cursor: str | None
) -> AsyncIterator[bytes]:
    """The events after `cursor`; the first read happens here, so an unknown build (or another
    account's) raises before any byte of a 200 is sent.

    Each event's `id` is the cursor after its line, so a client that reconnects with
    `Last-Event-ID` (or `?cursor=`) resumes exactly there; an `end` event closes the stream once
    the build has stopped and every line was sent.
    """
    first, status = await builds_service.tail(account_id, build_uuid, cursor)

    async def events() -> AsyncIterator[bytes]:
        nonlocal cursor, status
        lines = first
        idle = 0.0
        while True:
            for line_cursor, ts, text in lines:
                cursor = line_cursor
                yield b"id: %s\nevent: line\ndata: %s\n\n" % (
                    line_cursor.encode(),
                    encoder.encode([ts, text]),
                )
            if not lines and status == "stopped":
                build = await builds_service.get(account_id, build_uuid)
                yield b"event: end\ndata: %s\n\n" % encoder.encode(
                    {"status": build.status, "build_outcome": build.build_outcome}
                )
                return
            if not lines:
                await asyncio.sleep(STREAM_POLL_SECONDS)
                idle += STREAM_POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield b": keepalive\n\n"
            lines, status = await builds_service.tail(account_id, build_uuid, cursor)

    return events()
