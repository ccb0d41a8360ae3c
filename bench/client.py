"""A small keep-alive JSON client (http.client) for set-up over HTTP and tight polling loops."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from bench.servers import ACCOUNT_ID, HOST, TOKEN, Server, ServerError

BUILDS = f"/client/v4/accounts/{ACCOUNT_ID}/builds"


class Client:
    """One HTTP/1.1 connection to a server; paths are relative to the account's /builds, but
    those that start with /client/ (the Workers platform's).

    http.client rather than httpx: a request costs ~0.1 ms of client CPU instead of ~1 ms,
    which matters when polling a build every 2 ms on a 2-core machine that also runs the server.
    """

    def __init__(self, server: Server, timeout: float = 30.0, token: str = TOKEN) -> None:
        self.server = server
        self._conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.requests = 0

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """Status and decoded JSON body of one request (reconnects once if the server closed);
        a body of bytes is sent as it is, anything else as JSON."""
        headers = dict(self._headers)
        payload = None
        if body is not None:
            if isinstance(body, bytes):
                payload = body
            else:
                payload = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        url = path if path.startswith("/client/") else BUILDS + path
        for attempt in (1, 2):
            try:
                self._conn.request(method, url, body=payload, headers=headers)
                reply = self._conn.getresponse()
                raw = reply.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                if attempt == 2:
                    raise
        self.requests += 1
        try:
            return reply.status, json.loads(raw) if raw else None
        except ValueError:
            return reply.status, raw.decode(errors="replace")

    def result(self, method: str, path: str, body: Any = None) -> Any:
        """The envelope's `result`; anything but a 200 is a ServerError naming the request."""
        status, reply = self.call(method, path, body)
        if status != 200:
            raise ServerError(f"{method} {BUILDS}{path}: {status} {str(reply)[:300]}")
        return reply["result"]

    def page(self, path: str) -> tuple[list[Any], dict[str, Any]]:
        """A paged GET: its items and its result_info."""
        status, reply = self.call("GET", path)
        if status != 200:
            raise ServerError(f"GET {BUILDS}{path}: {status} {str(reply)[:300]}")
        return reply["result"], reply.get("result_info") or {}

    def wait_build(
        self,
        build_uuid: str,
        until: str,
        *,
        every: float,
        timeout: float,
        seen: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Poll GET …/builds/{uuid} every `every` s (a request starts every `every` s, or as
        soon as the previous answer when it took longer) until its status is `until` or later in
        queued → initializing → running → stopped; `seen` gets the perf_counter() time each
        status was first observed (when its answer arrived). Returns the last build read."""
        order = ("queued", "initializing", "running", "stopped")
        target = order.index(until)
        deadline = time.perf_counter() + timeout
        while True:
            asked = time.perf_counter()
            build = self.result("GET", f"/builds/{build_uuid}")
            now = time.perf_counter()
            status = build["status"]
            if seen is not None:
                seen.setdefault(status, now)
            if order.index(status) >= target:
                return dict(build)
            if now > deadline:
                raise ServerError(
                    f"build {build_uuid} still {status} after {timeout:.0f} s:\n"
                    f"{self.server.log_tail()}"
                )
            time.sleep(max(0.0, asked + every - time.perf_counter()))
