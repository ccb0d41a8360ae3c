"""GET /metrics in Prometheus' text format, and the middleware that counts every request."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buildsd.api.endpoint import Call
from buildsd.services.metrics import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def render(call: Call) -> Response:
    gauges = await call.services.runs.gauges()
    return Response(call.services.metrics.render(gauges), media_type=CONTENT_TYPE)


class RequestCounter:
    """Counts answers by operation (the route table's operationId) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            endpoint = scope.get("endpoint")
            operation = getattr(endpoint, "__name__", "unmatched") if endpoint else "unmatched"
            self.metrics.requests[(operation, status)] += 1
