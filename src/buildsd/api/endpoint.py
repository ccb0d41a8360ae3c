"""One Operation of the route table becomes one Starlette endpoint: auth, body, query, envelope."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from buildsd.api import envelope
from buildsd.api.audit import Audited, record
from buildsd.api.audit import event as audit_event
from buildsd.api.auth import Access, authenticate
from buildsd.errors import (
    BodyTooLarge,
    BuildsError,
    InvalidQueryParameter,
    InvalidRequestBody,
    NotFound,
    WorkerTooLarge,
)
from buildsd.services import Services
from buildsd.services.audit import AuditEvent, Draft
from buildsd.services.identity import Caller
from buildsd.wire import PageNumber, ResultInfo

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
    audit: Audited | None = None  # a write: recorded in the audit log (api/audit.py)
    # A Worker upload: the body is handed over as bytes (a multipart form the handler reads),
    # up to BUILDSD_MAX_SCRIPT_BYTES rather than BUILDSD_MAX_BODY_BYTES.
    upload: bool = False
    # For the OpenAPI document: the success answer, and the failures only this operation has
    # (those its access, body, query and path imply are added by api/openapi.py).
    status: int = 200
    media_type: str = "application/json"
    errors: tuple[int, ...] = ()


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
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the usual case: the whole body at once
        if len(body) > limit:
            raise BodyTooLarge(limit)
        return body
    return await _receive_rest(receive, message, limit)


async def _receive_rest(receive: Receive, message: Message | None, limit: int) -> bytes:
    """A body in several messages, beginning with `message`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if message is None:
            message = await receive()
        if message["type"] != "http.request":  # the client went away (or was sent a 408)
            # Never the part that came: a truncated body may still be valid JSON.
            raise InvalidRequestBody("the connection closed before the whole body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
        message = None
    return b"".join(chunks)


# JSON carries NUL only as the escape \u0000 (a raw NUL byte is not JSON); the escape is real
# when its backslash is not itself escaped, i.e. after an even run of backslashes.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _nul_pointer(raw: bytes) -> str:
    """Where the first string holding a NUL is, as a JSON pointer ("" when unknown)."""
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return ""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:  # no recursion: the body may nest as deep as the decoder allows
        node, path = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return path
        if isinstance(node, dict):
            for key, value in reversed(node.items()):
                if "\x00" in key:
                    return f"{path}/{key}"
                stack.append((value, f"{path}/{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{path}/{i}") for i, item in reversed(list(enumerate(node))))
    return ""


def decode_body(raw: bytes, kind: Any) -> Any:
    if not raw.strip():
        raise InvalidRequestBody("the request body is empty; send a JSON object", pointer="")
    # No name, command, path, variable or branch can hold a NUL (argv, environment variables,
    # git refs and PostgreSQL text all refuse it): refused here once, on both databases.
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        raise InvalidRequestBody("strings cannot contain NUL (\\u0000)", pointer=_nul_pointer(raw))
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequestBody(detail_of(exc), pointer=pointer_of(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestBody(f"the body is not valid JSON: {exc}", pointer="") from exc
    except RecursionError as exc:  # an untyped (Any) part nested deeper than the decoder goes
        raise InvalidRequestBody("the body nests too deeply", pointer="") from exc


def convert_body(data: Any, kind: Any) -> Any:
    """Validate an already-decoded body against `kind` (for bodies with several forms)."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequestBody(detail_of(exc), pointer=pointer_of(exc)) from exc


class PageQuery(msgspec.Struct):
    """`page` ≥ 1 (default 1), `per_page` 1-200 (default 50): D10."""

    page: PageNumber = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


def decode_query(query_string: bytes, kind: type) -> Any:
    try:
        values = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        return msgspec.convert(values, kind, strict=False)
    except msgspec.ValidationError as exc:
        # A query is flat: its parameter's name is the whole path, dots included (`action.type`).
        text = str(exc)
        name = text.rsplit(" - at `$.", 1)[1].rstrip("`") if " - at `$." in text else ""
        pointer = f"/{name}" if name else pointer_of(exc)
        raise InvalidQueryParameter(
            f"{name}: {detail_of(exc)}" if name else detail_of(exc), pointer=pointer
        ) from exc


class Endpoint:
    """One operation as a plain ASGI app: no Request or Response objects on the hot path."""

    def __init__(self, operation: Operation, services: Services) -> None:
        self.operation = operation
        self.services = services
        self.limit = services.settings.max_body_bytes
        self.upload_limit = services.settings.max_script_bytes
        self.__name__ = operation.operation_id  # what the metrics count requests by

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = self.operation
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        params: dict[str, str] = scope.get("path_params", {})
        call: Call | None = None  # set once authentication has passed: audited from there on
        draft: Draft | None = None  # the entry a write's own transaction takes (api/audit.py)
        try:
            caller = await authenticate(
                headers, operation.access, self.services.identity, params.get("account_id")
            )
            # No id holds a NUL (see decode_body). (An account id with one has already failed
            # authentication, or is an account the caller cannot see: 9109 from getAccount.)
            for name, value in params.items():
                if "\x00" in value and name != "account_id":
                    raise NotFound()
            call = Call(services=self.services, caller=caller, params=params, headers=headers)
            if operation.upload:
                try:
                    call.body = await receive_body(receive, headers, self.upload_limit)
                except BodyTooLarge as exc:
                    raise WorkerTooLarge(self.upload_limit) from exc
            elif operation.body is not None:
                raw = await receive_body(receive, headers, self.limit)
                if operation.body_decoder is not None:
                    call.body = operation.body_decoder(raw)
                else:
                    call.body = decode_body(raw, operation.body)
            if operation.query is not None:
                call.query = decode_query(scope.get("query_string", b""), operation.query)
            if operation.audit is None:
                outcome = await operation.handler(call)
            else:
                entry = self._entry(scope, call, operation.status)
                named = operation.audit.resource_key in params
                draft, token = self.services.audit.begin(entry, named=named)
                try:
                    outcome = await operation.handler(call)
                finally:
                    self.services.audit.end(draft, token)
        except BuildsError as exc:
            if call is not None and operation.audit is not None and not _written(draft):
                await self._audit(scope, call, exc.status, error_code=exc.code)
            await send_json(send, exc.status, envelope.error_body(exc), exc.headers)
            return
        except Exception:
            log.exception("unexpected error in %s", operation.operation_id)
            if call is not None and operation.audit is not None and not _written(draft):
                await self._audit(scope, call, 500, error_code=BuildsError.code)
            await send_json(send, 500, envelope.error_body(BuildsError()), {})
            return
        if isinstance(outcome, Response):  # a handler that streams answers for itself
            await outcome(scope, receive, send)
            return
        if isinstance(outcome, Reply):
            status, result = outcome.status, outcome.result
            body = envelope.ok_body(outcome.result, outcome.info, messages=outcome.messages)
        else:
            status, result = 200, outcome
            body = envelope.ok_body(outcome)
        if operation.audit is not None and not _written(draft):
            await self._audit(scope, call, status, result=result)
        await send_json(send, status, body, {})

    def _entry(
        self,
        scope: Scope,
        call: Call,
        status: int,
        *,
        result: Any = None,
        error_code: int | None = None,
    ) -> AuditEvent:
        assert self.operation.audit is not None
        client = scope.get("client")
        return audit_event(
            operation_id=self.operation.operation_id,
            audited=self.operation.audit,
            params=call.params,
            caller=call.caller,
            client=str(client[0]) if client else "",
            status=status,
            result=result,
            body=call.body,
            error_code=error_code,
        )

    async def _audit(
        self,
        scope: Scope,
        call: Call,
        status: int,
        *,
        result: Any = None,
        error_code: int | None = None,
    ) -> None:
        """What no write transaction took: recorded before the answer goes out, so a client that
        reads the log next finds it."""
        entry = self._entry(scope, call, status, result=result, error_code=error_code)
        await record(self.services, entry)


def _written(draft: Draft | None) -> bool:
    return draft is not None and draft.written


_JSON_HEADER = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, body: bytes, extra: Mapping[str, str]) -> None:
    """A whole JSON answer, straight to the ASGI server."""
    headers = [_JSON_HEADER, (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
