"""The innermost middleware: what escapes a route (a 404 or 405 from routing, a crash) is
answered in the envelope."""

from __future__ import annotations

import logging
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from buildsd.api import envelope
from buildsd.errors import BuildsError, MethodNotAllowed, NoRoute, NotFound

log = logging.getLogger("buildsd")

# D8: an unknown path under a Builds prefix is Builds' own 404; anywhere else, v4's 7000.
_BUILDS_PREFIX = re.compile(r"^/client/v4/accounts/[^/]+/builds(?:/|$)")


def error_for(path: str, exc: Exception) -> BuildsError:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        error: BuildsError = MethodNotAllowed()
        allow = exc.headers.get("Allow") if isinstance(exc, HTTPException) and exc.headers else None
        if allow:
            error.headers = {"Allow": allow}
        return error
    if status == 404:
        return NotFound() if _BUILDS_PREFIX.match(path) else NoRoute()
    return BuildsError()


class EnvelopeErrors:
    """Starlette's ServerErrorMiddleware and ExceptionMiddleware in one, without building a
    Request object for every call as those do (a few % of a request's time here). Operations
    answer their own errors (api/endpoint.py); this catches the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not isinstance(exc, HTTPException):
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            try:
                await envelope.error(error_for(scope["path"], exc))(scope, receive, send)
            except RuntimeError:  # the answer had already begun: nothing more can be said
                log.warning(
                    "no error answer on %s %s: already answering", scope["method"], scope["path"]
                )
