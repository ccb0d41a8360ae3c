"""uvicorn's httptools protocol plus the limits it lacks on a request's headers.

Without them a client could hold a connection forever by sending nothing, or headers one
byte at a time (slowloris), and could make the server buffer headers without bound (a 10 MB
header was answered 200). The app never sees such requests, so they are settled here:

- headers must be complete within `header_timeout` seconds of the connection opening or of
  the request's first byte, else the connection is closed (nothing is answered: there is no
  request yet);
- headers over `max_header_bytes` bytes or `MAX_HEADER_FIELDS` fields get 431 in the envelope
  (code 6003) and the connection is closed;
- a body must be complete within `body_timeout` seconds of its headers, else 408 in the
  envelope (code 12002) and the connection is closed (a body sent a byte a second held its
  connection, unauthenticated webhook routes included, forever). The same timer as the
  headers' runs on, so a request whose body arrives with its headers costs nothing more;
- bytes that are not HTTP get uvicorn's 400, in the envelope (code 6003) rather than as text.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from buildsd.api.envelope import error_body
from buildsd.errors import (
    BodyTimeout,
    BuildsError,
    Cause,
    InvalidRequestHeaders,
    RequestHeadersTooLarge,
)

MAX_HEADER_FIELDS = 100  # Apache's LimitRequestFields; real clients send a dozen or two
# After a refusal: the answer is sent and the sending side shut, and whatever the client still
# sends is read and dropped this long, so it gets to read the 431 instead of a reset.
LINGER_SECONDS = 2.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; configured by subclassing (see `guarded_protocol`)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._in_body = False  # headers complete, body not yet: the deadline is the body's
        self._body_due = 0.0
        self._read = 0  # bytes read while this request's headers were incomplete
        self._header_bytes = 0  # the request line and header fields parsed so far
        self._header_fields = 0
        # Once set, the request is not served: the connection answers this and closes.
        self._refusal: BuildsError | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # draining until the linger ends
        super().data_received(data)  # may begin a request, or complete its headers
        if self._in_headers and self._refusal is None:
            # Headers still incomplete after this read: bound what the parser buffers. (A read
            # may hold the end of a previous request too; only a pipelining client notices.)
            self._read += len(data)
            self._check(self._read)
        if self._refusal is not None and (self.cycle is None or self.cycle.response_complete):
            self._answer()  # else after the answer to the request before it

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None:
            self._answer()

    def on_message_begin(self) -> None:
        if self._refusal is not None:
            return
        super().on_message_begin()
        self._in_headers = True
        self._read = self._header_bytes = self._header_fields = 0
        if self._deadline is None:  # else the connection's own, which started earlier
            self._start_deadline()

    def on_url(self, url: bytes) -> None:
        if self._refusal is None:
            self._header_bytes += len(url)
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refusal is None:
            self._header_fields += 1
            self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refusal is not None:
            return
        self._in_headers = False
        self._check(self._header_bytes)
        if self._refusal is not None:  # the request never reaches the app
            self._stop_deadline()
            return
        super().on_headers_complete()
        # The deadline runs on for the body until on_message_complete (in the same read when
        # the body came with the headers): it fires only if the body is slow, and then
        # re-arms for the body's own due time (see _too_slow).
        self._in_body = True
        self._body_due = self.loop.time() + self.body_timeout
        if self._deadline is not None and self._deadline.when() > self._body_due:
            self._stop_deadline()
            self._deadline = self.loop.call_at(self._body_due, self._too_slow)

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusal is None:
            self._in_body = False
            self._stop_deadline()
            super().on_message_complete()

    def _check(self, size: int) -> None:
        if size > self.max_header_bytes:
            detail = f"request headers are larger than {self.max_header_bytes} bytes"
            self._refusal = RequestHeadersTooLarge(detail)
        elif self._header_fields > MAX_HEADER_FIELDS:
            detail = f"more than {MAX_HEADER_FIELDS} request header fields"
            self._refusal = RequestHeadersTooLarge(detail)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if not self._in_body:
            self.transport.close()  # headers too slow: there is no request to answer
        elif self.loop.time() < self._body_due:  # the headers' deadline, not the body's
            self._deadline = self.loop.call_at(self._body_due, self._too_slow)
        elif self.cycle is None or self.cycle.response_started:
            self.transport.close()  # answered already (without reading the body)
        else:
            # The app waits for the body: it hears the client went away (its answer is
            # dropped, as for any client that left) and the client hears 408.
            self._refusal = BodyTimeout(self.body_timeout)
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            self._answer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP: in the envelope, not as plain text."""
        if self._refusal is None:
            self._refusal = InvalidRequestHeaders(chain=(Cause(InvalidRequestHeaders.code, msg),))
        if self.cycle is None or self.cycle.response_complete:
            self._answer()  # else after the answer to the request before it

    def _answer(self) -> None:
        """The refusal, as this connection's last answer; then it drains and closes."""
        self._stop_deadline()
        if self._answered or self._refusal is None or self.transport.is_closing():
            return
        self._answered = True
        error = self._refusal
        body = error_body(error)
        head = (
            f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def guarded_protocol(
    header_timeout: float, max_header_bytes: int, body_timeout: float = 30.0
) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), with these limits."""
    return type(
        "BuildsdHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": header_timeout,
            "max_header_bytes": max_header_bytes,
            "body_timeout": body_timeout,
        },
    )
