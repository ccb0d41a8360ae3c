"""The Starlette and uvicorn internals buildsd builds on (api/router.py, api/protocol.py), named
in one place: pyproject pins both to the minor versions these were read from, and this test
fails first, saying which internal moved, when an upgrade changes one."""

from __future__ import annotations

import inspect

from starlette import _utils
from starlette.routing import Route
from uvicorn.protocols.http import httptools_impl


def test_starlette_route_internals_the_indexed_router_reads() -> None:
    async def endpoint(scope, receive, send) -> None:  # pragma: no cover - never called
        return None

    route = Route("/a/{b}", endpoint, methods=["GET"])
    assert callable(_utils.get_route_path)
    assert route.path_regex.match("/a/x") is not None
    assert set(route.param_convertors) == {"b"}
    assert route.methods == {"GET", "HEAD"}
    assert route.endpoint is endpoint and callable(route.app)


def test_uvicorn_httptools_protocol_internals_the_guard_overrides_and_reads() -> None:
    protocol = httptools_impl.HttpToolsProtocol
    for hook in (
        "connection_made",
        "connection_lost",
        "data_received",
        "on_response_complete",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_body",
        "on_message_complete",
    ):
        assert callable(getattr(protocol, hook, None)), hook
    init = inspect.getsource(protocol.__init__)
    assert "self.transport" in inspect.getsource(protocol.connection_made)
    assert "self.loop" in init and "self.cycle" in init
    cycle = inspect.getsource(httptools_impl.RequestResponseCycle.__init__)
    for field in ("response_started", "response_complete", "disconnected", "message_event"):
        assert f"self.{field}" in cycle, field
