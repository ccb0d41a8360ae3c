"""The indexed router picks exactly the route Starlette's scan of every route would pick."""

from __future__ import annotations

import asyncio
import re

from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from buildsd.api.router import IndexedRouter
from tests.conftest import World

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
VALUES = ("x", "latest", "builds", "0123456789abcdef0123456789abcdef")


def _pick(routes: list, path: str, method: str) -> tuple[int, str] | None:
    """The first FULL match, else the first PARTIAL (a 405), as Starlette's Router does."""
    scope = {"type": "http", "path": path, "root_path": "", "method": method}
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return id(route), "full"
        if match is Match.PARTIAL and partial is None:
            partial = (id(route), "partial")
    return partial


def test_every_path_and_method_routes_as_a_full_scan(world: World) -> None:
    router = world.client.app.router  # type: ignore[attr-defined]
    assert isinstance(router, IndexedRouter)
    paths = {route.path for route in router.routes}
    # Each route's path with its parameters filled in several ways (some equal to another
    # route's literal segment), plus paths no route has.
    requests = {"/", "/nope", "/client/v4/accounts/x/builds/", "/client/v4/accounts/x/builds/a/b"}
    for path in paths:
        for value in VALUES:
            requests.add(re.sub(r"\{[^}]+\}", value, path))
    for path in sorted(requests):
        for method in METHODS:
            expected = _pick(router.routes, path, method)
            assert _pick(router.candidates(path), path, method) == expected, (method, path)


def test_a_full_match_reaches_the_route_with_starlettes_scope(world: World) -> None:
    """The fast path sets what Route.matches would: the endpoint and the path parameters."""
    table = world.client.app.router.routes  # type: ignore[attr-defined]
    seen: list[tuple[object, dict[str, str]]] = []

    class Recorder:  # an ASGI app (not a function, which Route would wrap as a handler)
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append((scope["endpoint"], scope["path_params"]))

    routes = [Route(r.path, Recorder(), methods=r.methods) for r in table]
    router = IndexedRouter(routes)
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "0123456789abcdef0123456789abcdef", route.path)
        method = sorted(route.methods or {"GET"})[0]
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        child = next(c for r in routes for m, c in [r.matches(dict(scope))] if m is Match.FULL)
        asyncio.run(router.app(dict(scope), _no_receive, _no_send))
        assert seen.pop() == (child["endpoint"], child["path_params"]), (method, path)


async def _no_receive() -> Message:
    raise AssertionError("not read")


async def _no_send(message: Message) -> None:
    raise AssertionError("not sent")
