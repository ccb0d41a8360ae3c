"""One Operation of the route table becomes one Starlette endpoint: auth, body, query, envelope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from buildsd.api import envelope
from buildsd.api.auth import Access, authenticate
from buildsd.errors import BodyTooLarge, BuildsError, InvalidQueryParameter, InvalidRequestBody
from buildsd.services import Services
from buildsd.services.identity import Caller
from buildsd.wire import ResultInfo

log = logging.getLogger("buildsd.api")


@dataclass(slots=True)
class Call:
    """What a handler gets: the services, the caller, and the request already parsed."""

    services: Services
    caller: Caller | None
    params: dict[str, str]
    body: Any = None
    query: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return self.params["account_id"]


@dataclass(slots=True)
class Reply:
    """A result with paging or a status other than 200."""

    result: Any
    info: ResultInfo | None = None
    status: int = 200
    messages: list[Any] = field(default_factory=list)


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    """One row of the route table: it drives routing, authentication and the OpenAPI document."""

    method: str
    path: str
    operation_id: str
    handler: Handler
    access: Access
    summary: str
    body: Any = None  # the body's type: decoded and validated before the handler runs
    body_decoder: Callable[[bytes], Any] | None = None  # when one type cannot say it
    query: type | None = None
    result: Any = None  # the result's type, for the OpenAPI document
    paged: bool = False
    extension: bool = False
    tag: str = "Workers Builds"


def pointer_of(error: msgspec.ValidationError) -> str | None:
    """msgspec's "... - at `$.a[0].b`" as a JSON pointer "/a/0/b"."""
    text = str(error)
    marker = " - at `$"
    if marker not in text:
        return ""
    path = text.rsplit(marker, 1)[1].rstrip("`")
    parts = path.replace("[", ".").replace("]", "").split(".")
    return "/".join(parts)


def detail_of(error: msgspec.ValidationError | msgspec.DecodeError) -> str:
    return str(error).split(" - at `", 1)[0]


async def receive_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a Starlette request (for handlers outside the route table)."""
    return await receive_body(request.receive, request.headers, limit)


def decode_body(raw: bytes, kind: Any) -> Any:
    if not raw.strip():
        raise InvalidRequestBody("the request body is empty; send a JSON object", pointer="")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequestBody(detail_of(exc), pointer=pointer_of(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestBody(f"the body is not valid JSON: {exc}", pointer="") from exc


def convert_body(data: Any, kind: Any) -> Any:
    """Validate an already-decoded body against `kind` (for bodies with several forms)."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequestBody(detail_of(exc), pointer=pointer_of(exc)) from exc


class PageQuery(msgspec.Struct):
    """`page` ≥ 1 (default 1), `per_page` 1-200 (default 50): D10."""

    page: Annotated[int, msgspec.Meta(ge=1)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


def decode_query(query_string: bytes, kind: type) -> Any:
    try:
        values = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        pointer = pointer_of(exc)
        name = pointer.lstrip("/") if pointer else ""
        raise InvalidQueryParameter(
            f"{name}: {detail_of(exc)}" if name else detail_of(exc), pointer=pointer
        ) from exc


class Endpoint:
    """One operation as a plain ASGI app: no Request or Response objects on the hot path."""

    def __init__(self, operation: Operation, services: Services) -> None:
        self.operation = operation
        self.services = services
        self.limit = services.settings.max_body_bytes
        self.__name__ = operation.operation_id  # what the metrics count requests by

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = self.operation
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        params: dict[str, str] = scope.get("path_params", {})
        try:
            caller = await authenticate(
                headers, operation.access, self.services.identity, params.get("account_id")
            )
            call = Call(services=self.services, caller=caller, params=params, headers=headers)
            if operation.body is not None:
                raw = await receive_body(receive, headers, self.limit)
                if operation.body_decoder is not None:
                    call.body = operation.body_decoder(raw)
                else:
                    call.body = decode_body(raw, operation.body)
            if operation.query is not None:
                call.query = decode_query(scope.get("query_string", b""), operation.query)
            outcome = await operation.handler(call)
        except BuildsError as exc:
            await _send(send, exc.status, envelope.error_body(exc), exc.headers)
            return
        except Exception:
            log.exception("unexpected error in %s", operation.operation_id)
            await _send(send, 500, envelope.error_body(BuildsError()), {})
            return
        if isinstance(outcome, Response):  # a handler that streams answers for itself
            await outcome(scope, receive, send)
        elif isinstance(outcome, Reply):
            body = envelope.ok_body(outcome.result, outcome.info, messages=outcome.messages)
            await _send(send, outcome.status, body, {})
        else:
            await _send(send, 200, envelope.ok_body(outcome), {})


_JSON_HEADER = (b"content-type", b"application/json")


async def _send(send: Send, status: int, body: bytes, extra: Mapping[str, str]) -> None:
    headers = [_JSON_HEADER, (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
