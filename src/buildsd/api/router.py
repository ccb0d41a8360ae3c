"""Starlette's Router, trying only the routes whose shape can match the request's path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.convertors import StringConvertor
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

_Key = tuple[int, str | None]


def _shape(path: str) -> _Key:
    """(segment count, last segment), with None for a `{param}` last segment."""
    last = path.rsplit("/", 1)[-1]
    return path.count("/"), None if last.startswith("{") else last


class IndexedRouter(Router):
    """Starlette tries every route's regex in turn: with ~60 routes a request paid for up to 22
    matches (about 70 µs here) before its handler ran. This router buckets routes by path shape
    and tries only a request's bucket, in table order, with Starlette's own matching, so what
    matches (and 405 versus 404) is exactly what Starlette's scan would give. No route's
    parameter may hold a `/`, and every parameter is a plain string: a full match then goes
    straight to the route's app, without Route.matches' and Route.handle's copies and checks.
    """

    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=list(routes), **kwargs)
        wild: dict[int, list[tuple[int, Route]]] = {}
        literal: dict[_Key, list[tuple[int, Route]]] = {}
        for index, route in enumerate(self.routes):
            if not isinstance(route, Route) or any(
                type(convertor) is not StringConvertor
                for convertor in route.param_convertors.values()
            ):
                raise ValueError(f"IndexedRouter takes routes of string parameters, not {route!r}")
            count, last = _shape(route.path)
            bucket = (
                wild.setdefault(count, [])
                if last is None
                else literal.setdefault((count, last), [])
            )
            bucket.append((index, route))
        self._wild = {count: [route for _, route in routes] for count, routes in wild.items()}
        self._literal = {
            key: [route for _, route in sorted(routes + wild.get(key[0], []), key=_first)]
            for key, routes in literal.items()
        }

    def candidates(self, path: str) -> list[Route]:
        count, last = path.count("/"), path.rsplit("/", 1)[-1]
        found = self._literal.get((count, last))
        return found if found is not None else self._wild.get(count, [])

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)
        path, method = get_route_path(scope), scope["method"]
        partial = None
        for route in self.candidates(path):
            found = route.path_regex.match(path)
            if found is None:
                continue
            if route.methods is None or method in route.methods:  # what Route.matches calls FULL
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {**scope.get("path_params", {}), **found.groupdict()}
                await route.app(scope, receive, send)
                return
            if partial is None:
                partial, partial_scope = route, route.matches(scope)[1]
        if partial is not None:  # the path is known, the method is not: 405
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await self.default(scope, receive, send)


def _first(entry: tuple[int, Route]) -> int:
    return entry[0]
