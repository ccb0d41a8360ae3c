"""Rendering every answer as the Cloudflare v4 envelope, success or failure."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from starlette.responses import Response

from buildsd.errors import BuildsError
from buildsd.wire import Envelope, ErrorItem, ErrorSource, ResultInfo, encoder

JSON = "application/json"


def ok_body(
    result: Any, info: ResultInfo | None = None, *, messages: list[Any] | None = None
) -> bytes:
    body = Envelope(
        success=True,
        errors=[],
        messages=messages or [],
        result=result,
        result_info=info if info is not None else UNSET,
    )
    return encoder.encode(body)


def error_body(exc: BuildsError) -> bytes:
    item = ErrorItem(code=exc.code, message=exc.message)
    if exc.chain:
        item.error_chain = [ErrorItem(code=c.code, message=c.message) for c in exc.chain]
    if exc.pointer is not None:
        item.source = ErrorSource(pointer=exc.pointer)
    return encoder.encode(Envelope(success=False, errors=[item], messages=[], result=None))


def error(exc: BuildsError) -> Response:
    return Response(error_body(exc), status_code=exc.status, headers=exc.headers, media_type=JSON)
