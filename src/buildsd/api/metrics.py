"""GET /metrics in Prometheus' text format, and the middleware that observes every request."""

from __future__ import annotations

import os
import time

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buildsd.api.endpoint import Call
from buildsd.logs import AccessLog
from buildsd.services.metrics import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def render(call: Call) -> Response:
    gauges = await call.services.runs.gauges()
    return Response(call.services.metrics.render(gauges), media_type=CONTENT_TYPE)


class RequestObserver:
    """Every request: a `cf-ray`-style id on the answer, a count by operation and status, and
    one JSON access-log line (time, request id, account, operation, status, duration)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        ray = os.urandom(8).hex() + "-BSD"  # secrets.token_hex's bytes, one call instead of 3
        ray_header = (b"cf-ray", ray.encode())
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), ray_header]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            endpoint = scope.get("endpoint")
            operation = getattr(endpoint, "__name__", "unmatched") if endpoint else "unmatched"
            self.metrics.requests[(operation, status)] += 1
            if self.access_log.enabled:
                # Whole microseconds, in milliseconds: round(x, 3) formats and parses a float.
                duration_ms = (time.perf_counter_ns() - started) // 1000 / 1000
                self.access_log.emit(
                    f"{scope['method']} {operation} {status}",
                    {
                        "request_id": ray,
                        "account": scope.get("path_params", {}).get("account_id"),
                        "method": scope["method"],
                        "path": scope["path"],  # never the query string: cursors, ids only
                        "operation": operation,
                        "status": status,
                        "duration_ms": duration_ms,
                    },
                )
