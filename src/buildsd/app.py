"""create_app(settings, services=None): the composition root that wires HTTP to the services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from buildsd import migrations
from buildsd.api import envelope, openapi, webhooks
from buildsd.api.endpoint import Endpoint
from buildsd.api.guard import EnvelopeErrors
from buildsd.api.metrics import RequestObserver
from buildsd.api.ratelimit import RateLimitMiddleware
from buildsd.api.router import IndexedRouter
from buildsd.api.routes import served, withheld
from buildsd.config import Settings
from buildsd.dashboard import http as dashboard_http
from buildsd.dashboard.pages import Dashboard, Handler
from buildsd.db import create_database
from buildsd.emulator.middleware import Emulator
from buildsd.errors import NotFound
from buildsd.forges.sender_process import sender_for
from buildsd.logs import AccessLog
from buildsd.runner.sandbox import Sandbox
from buildsd.runner.worker import Runner
from buildsd.services import Services, rate_limits
from buildsd.wire import encoder


def build_services(
    settings: Settings, access_log: AccessLog | None = None, group_commit: bool = True
) -> Services:
    """The services of one process; `access_log` from logs.configure (none: nothing written);
    `group_commit` as in db/sqlite.py."""
    return Services(
        settings,
        create_database(settings, group_commit),
        migrations.head(),
        Sandbox(settings),
        access_log or AccessLog(None),
    )


def dashboard_route(handler: Handler, max_body: int) -> Callable[[Request], Awaitable[Response]]:
    """Starlette's request in, the dashboard's Reply out (dashboard/ knows no Starlette)."""

    async def endpoint(request: Request) -> Response:
        form: dict[str, str] = {}
        if request.method == "POST":
            body = await request.body()
            if len(body) <= max_body:
                form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        reply = await handler(
            dashboard_http.Request(
                method=request.method,
                path=request.url.path,
                params=request.path_params,
                query=request.query_params,
                cookies=request.cookies,
                headers=request.headers,
                form=form,
                # uvicorn sets the scheme from X-Forwarded-Proto for trusted proxies.
                secure=request.url.scheme == "https",
            )
        )
        response: Response
        if reply.stream is not None:
            response = StreamingResponse(reply.stream, reply.status, media_type=reply.media_type)
        else:
            response = Response(reply.body, reply.status, media_type=reply.media_type)
        response.headers.update(reply.headers)
        for value in reply.cookies:
            response.headers.append("set-cookie", value)
        return response

    return endpoint


class App(Starlette):
    """Starlette without its two exception middlewares: api/guard.py does their work."""

    def build_middleware_stack(self) -> ASGIApp:
        # The router's own stack (it has no middleware: its `app`), skipping Router.__call__.
        app: ASGIApp = self.router.middleware_stack
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    services = services or build_services(settings)
    operations = served(settings.strict)
    routes = [Route(op.path, Endpoint(op, services), methods=[op.method]) for op in operations]
    spec = encoder.encode(openapi.document(operations))

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    routes.append(Route("/client/v4/openapi.json", openapi_json, methods=["GET"]))
    routes += webhooks.routes(services)
    # The dashboard (D28) at /: none of its paths is Cloudflare's, so strict mode keeps it.
    routes += [
        Route(path, dashboard_route(handler, settings.max_body_bytes), methods=[method])
        for method, path, handler in Dashboard(services).routes()
    ]

    async def not_found(request: Request) -> Response:
        return envelope.error(NotFound())

    # Without these, a withheld GET on a path that also has a PUT would answer 405, not 404.
    routes += [Route(op.path, not_found, methods=[op.method]) for op in withheld(settings.strict)]

    limits = rate_limits.counter(settings.rate_limit, settings.redis_url, services.db)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.open()
        # The sandbox probe runs a process: here, off the event loop, not in a first request.
        await asyncio.to_thread(services.sandbox.mode)
        stopping = asyncio.Event()
        runner = None
        if settings.runner_slots > 0:
            runner = asyncio.create_task(Runner(services, settings).run(stopping))
        # Matches stored webhook deliveries, beginning with any a stopped process left behind.
        matcher = asyncio.create_task(services.webhooks.run(stopping))
        sender = asyncio.create_task(sender_for(services.outbox, settings).run(stopping))  # D29
        try:
            yield
        finally:
            stopping.set()
            services.runs.notify()
            services.webhooks.notify()
            if runner is not None:
                await runner
            await matcher
            await sender
            await limits.close()  # before the database: its counts may still be sent there
            await services.close()
            services.access_log.flush()

    middleware = [
        Middleware(RequestObserver, metrics=services.metrics, access_log=services.access_log)
    ]
    if settings.control_api and not settings.strict:  # D26: never in strict mode
        ids = [(op.method, op.path, op.operation_id) for op in operations]
        middleware.insert(0, Middleware(Emulator, services=services, operations=ids))
    if settings.rate_limit > 0:
        middleware.append(Middleware(RateLimitMiddleware, counter=limits))
    middleware.append(Middleware(EnvelopeErrors))
    app = App(routes=routes, middleware=middleware, lifespan=lifespan)
    app.router = IndexedRouter(routes, lifespan=lifespan, redirect_slashes=False)
    app.state.services = services
    return app
