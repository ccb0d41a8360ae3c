"""One Operation of the route table becomes one Starlette endpoint: auth, body, query, envelope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

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


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


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


def decode_query(request: Request, kind: type) -> Any:
    try:
        return msgspec.convert(dict(request.query_params), kind, strict=False)
    except msgspec.ValidationError as exc:
        pointer = pointer_of(exc)
        name = pointer.lstrip("/") if pointer else ""
        raise InvalidQueryParameter(
            f"{name}: {detail_of(exc)}" if name else detail_of(exc), pointer=pointer
        ) from exc


def endpoint(operation: Operation, services: Services) -> Callable[[Request], Awaitable[Response]]:
    limit = services.settings.max_body_bytes
    identity = services.identity

    async def handle(request: Request) -> Response:
        params: dict[str, str] = request.path_params
        try:
            caller = await authenticate(
                request.headers, operation.access, identity, params.get("account_id")
            )
            call = Call(services=services, caller=caller, params=params)
            if operation.body is not None:
                raw = await read_body(request, limit)
                if operation.body_decoder is not None:
                    call.body = operation.body_decoder(raw)
                else:
                    call.body = decode_body(raw, operation.body)
            if operation.query is not None:
                call.query = decode_query(request, operation.query)
            outcome = await operation.handler(call)
        except BuildsError as exc:
            return envelope.error(exc)
        except Exception:
            log.exception("unexpected error in %s", operation.operation_id)
            return envelope.error(BuildsError())
        if isinstance(outcome, Reply):
            return envelope.ok(
                outcome.result, outcome.info, status=outcome.status, messages=outcome.messages
            )
        return envelope.ok(outcome)

    handle.__name__ = operation.operation_id
    return handle
