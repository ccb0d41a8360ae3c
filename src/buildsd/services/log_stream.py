"""A build's log lines as Server-Sent Events, fanned out: however many watch one build in this
process, one task reads its new lines from the database and each event is encoded once."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from buildsd.services.builds import Builds, decode_cursor, encode_cursor
from buildsd.wire import encoder

STREAM_POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0
KEPT_LINES = 20_000  # per watched build; a watcher further behind reads the database


def line_event(seq: int, ts: int, text: str) -> bytes:
    return b"id: %s\nevent: line\ndata: %s\n\n" % (
        encode_cursor(seq).encode(),
        encoder.encode([ts, text]),
    )


@dataclass
class _Tail:
    """The lines of one build read since `base` (every one after it is here, in order)."""

    base: int
    last: int
    seqs: list[int] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)
    watchers: int = 0
    end: bytes | None = None  # the end event, once the build stopped and every line was read
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def since(self, after: int) -> tuple[int, bytes]:
        """The events after line `after` as one chunk, and the last line number in it."""
        start = bisect.bisect_right(self.seqs, after)
        if start == len(self.seqs):
            return after, b""
        return self.seqs[-1], b"".join(self.events[start:])

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class LogStreams:
    """The streams of this process, one `_Tail` per watched build."""

    def __init__(self, builds: Builds) -> None:
        self._builds = builds
        self._tails: dict[tuple[str, str], _Tail] = {}

    async def open(
        self, account_id: str, build_uuid: str, cursor: str | None
    ) -> AsyncIterator[bytes]:
        """The events after `cursor`; the first read happens here, so an unknown build (or
        another account's) raises before any byte of a 200 is sent.

        Each event's `id` is the cursor after its line, so a client that reconnects with
        `Last-Event-ID` (or `?cursor=`) resumes exactly there; an `end` event closes the stream
        once the build has stopped and every line was sent.
        """
        after = decode_cursor(cursor) if cursor else 0
        rows, status = await self._builds.tail_rows(account_id, build_uuid, after)
        return self._events(account_id, build_uuid, after, rows, status)

    async def _events(
        self,
        account_id: str,
        build_uuid: str,
        after: int,
        rows: list[tuple[int, int, str]],
        status: str,
    ) -> AsyncIterator[bytes]:
        if rows:
            yield b"".join(line_event(*row) for row in rows)
            after = rows[-1][0]
        tail = self._join(account_id, build_uuid, after)
        try:
            idle = 0.0
            while True:
                if after < tail.base:  # behind what the tail holds: the database has it
                    rows, _ = await self._builds.tail_rows(account_id, build_uuid, after)
                    if rows:
                        yield b"".join(line_event(*row) for row in rows)
                        after = rows[-1][0]
                        continue
                    after = tail.base
                after, chunk = tail.since(after)
                if chunk:
                    idle = 0.0
                    yield chunk
                    continue
                if tail.end is not None:
                    yield tail.end
                    return
                changed = tail.changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS - idle)
                    continue
                idle = 0.0
                yield b": keepalive\n\n"
        finally:
            self._leave(account_id, build_uuid)

    def _join(self, account_id: str, build_uuid: str, after: int) -> _Tail:
        key = (account_id, build_uuid)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = _Tail(base=after, last=after)
            tail.task = asyncio.create_task(self._read(account_id, build_uuid, tail))
        tail.watchers += 1
        return tail

    def _leave(self, account_id: str, build_uuid: str) -> None:
        key = (account_id, build_uuid)
        tail = self._tails.get(key)
        if tail is None:
            return
        tail.watchers -= 1
        if tail.watchers <= 0:
            del self._tails[key]
            if tail.task is not None:
                tail.task.cancel()

    async def _read(self, account_id: str, build_uuid: str, tail: _Tail) -> None:
        """The one reader of a watched build: new lines every STREAM_POLL_SECONDS until it has
        stopped and every line is read (a stopped status read before the lines means so)."""
        while True:
            rows, status = await self._builds.tail_rows(account_id, build_uuid, tail.last)
            if rows:
                for seq, ts, text in rows:
                    tail.seqs.append(seq)
                    tail.events.append(line_event(seq, ts, text))
                tail.last = rows[-1][0]
                if len(tail.seqs) > KEPT_LINES:
                    dropped = len(tail.seqs) - KEPT_LINES
                    tail.base = tail.seqs[dropped - 1]
                    del tail.seqs[:dropped], tail.events[:dropped]
                tail.notify()
                continue
            if status == "stopped":
                build = await self._builds.get(account_id, build_uuid)
                tail.end = b"event: end\ndata: %s\n\n" % encoder.encode(
                    {"status": build.status, "build_outcome": build.build_outcome}
                )
                tail.notify()
                return
            await asyncio.sleep(STREAM_POLL_SECONDS)
