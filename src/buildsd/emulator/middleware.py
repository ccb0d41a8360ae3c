"""The emulator's ASGI middleware: answers /_buildsd/ control calls, applies the fault rules to
API calls, counts build polls and records every call in the journal, secrets masked."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import msgspec

from buildsd import clock
from buildsd.emulator.control import PREFIX, dispatch
from buildsd.errors import BuildsError
from buildsd.services import Services
from buildsd.services.emulation import Entry, Fault
from buildsd.wire import Envelope, ErrorItem, ErrorSource, encoder

log = logging.getLogger("buildsd.emulator")
Scope = dict[str, Any]
Receive = Any
Send = Any

_ACCOUNT = re.compile(r"^/client/v4/accounts/([0-9a-f]{32})(?:/|$)")
_BUILD = re.compile(r"^/client/v4/accounts/[0-9a-f]{32}/builds/builds/([0-9a-f-]{36})$")
# Body fields whose values never reach the journal: credentials and secret values.
_SECRET_KEYS = {"secret", "token", "value", "password", "api_key", "build_token_secret"}
_KEEP_BODY = 64 * 1024
MASK = "********"


class ConnectionDropped(Exception):
    """Raised after a response has begun: the server closes the connection mid-answer."""


def _template_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path)) + "$")


def mask(value: Any, secret: bool = False) -> Any:
    """`value` with credentials and secret variable values replaced by MASK."""
    if isinstance(value, dict):
        hides = secret or value.get("is_secret") is True or value.get("type") == "secret"
        return {
            key: MASK
            if isinstance(item, str)
            and (key.endswith("_secret") or (key in _SECRET_KEYS and (key != "value" or hides)))
            else mask(item, secret=hides and key == "value")
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask(item, secret) for item in value]
    return MASK if secret and isinstance(value, str) else value


def _journal_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return mask(msgspec.json.decode(raw))
    except msgspec.DecodeError:
        return raw[:_KEEP_BODY].decode("utf-8", "replace")


async def _respond(send: Send, status: int, payload: bytes, headers: list[Any]) -> None:
    headers = [(b"content-type", b"application/json"), *headers]
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _ok(result: Any) -> Envelope:
    return Envelope(success=True, errors=[], messages=[], result=result)


def _error_body(
    code: int, message: str, chain: tuple[Any, ...] = (), pointer: str | None = None
) -> bytes:
    item = ErrorItem(code=code, message=message)
    if chain:  # the detail a person needs (InvalidRequestBody keeps Cloudflare's message)
        item.error_chain = [ErrorItem(code=c.code, message=c.message) for c in chain]
    if pointer is not None:  # the field refused, as the API names it (D9)
        item.source = ErrorSource(pointer=pointer)
    return encoder.encode(Envelope(success=False, errors=[item], messages=[], result=None))


class Emulator:
    def __init__(
        self, app: Any, services: Services, operations: list[tuple[str, str, str]]
    ) -> None:
        self.app = app
        self.services = services
        self.emulation = services.emulation
        self.operations = [(m, _template_regex(p), op) for m, p, op in operations]

    def _operation(self, method: str, path: str) -> str | None:
        for op_method, pattern, operation in self.operations:
            if op_method == method and pattern.match(path):
                return operation
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path.startswith(PREFIX):
            await self._control(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def receive_kept() -> Any:
            message = await receive()
            if message["type"] == "http.request" and sum(map(len, chunks)) < _KEEP_BODY:
                chunks.append(message.get("body", b""))
            return message

        status = [0]

        async def send_seen(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        found = _ACCOUNT.match(path)
        account_id = found.group(1) if found else None
        if method == "GET" and (build := _BUILD.match(path)):
            self.emulation.count_poll(build.group(1))
        try:
            fault = None
            if self.emulation.rules:
                fault = self.emulation.match(
                    method, path, account_id, self._operation(method, path)
                )
            if fault is not None and await self._apply(fault, send_seen):
                return
            await self.app(scope, receive_kept, send_seen)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            self.emulation.record(
                Entry(
                    method,
                    path,
                    query,
                    _journal_body(b"".join(chunks)),
                    status[0],
                    clock.now(),
                    account_id,
                )
            )

    async def _apply(self, fault: Fault, send: Send) -> bool:
        """Do what the rule says; True when it has answered (or dropped) the call."""
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.drop:
            start = {"type": "http.response.start", "status": 200, "headers": []}
            await send(start)
            raise ConnectionDropped("a fault rule dropped this connection")
        if fault.status is None:
            return False
        headers = []
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        await _respond(send, fault.status, _error_body(fault.code, fault.message), headers)
        return True

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            status, result = await dispatch(
                self.services, scope["method"], scope["path"], query, body
            )
            payload = encoder.encode(_ok(result))
        except BuildsError as exc:
            payload = _error_body(exc.code, exc.message, exc.chain, exc.pointer)
            status = exc.status
        except Exception:  # a bug: said in the envelope, logged with its traceback
            log.exception("control call %s %s failed", scope["method"], scope["path"])
            failure = BuildsError()
            status, payload = failure.status, _error_body(failure.code, failure.message)
        await _respond(send, status, payload, [])
