"""A real local HTTP server standing in for GitHub, GitLab and Gitea: it records every request
and answers as a test programs it (failures first, delays, then success)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


@dataclass
class Forge:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    # Answers to give before answering normally: an HTTP status, or "slow" (longer than the
    # client's timeout).
    failures: list[int | str] = field(default_factory=list)
    delay: float = 0.0
    slow: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000

    def ok(self, method: str | None = None) -> list[Seen]:
        """The requests answered with success, in the order they arrived."""
        with self.lock:
            return [
                s
                for s in self.seen
                if s.headers.get("x-answered") == "ok" and (method is None or s.method == method)
            ]

    def wait(self, count: int, timeout: float = 15, method: str | None = None) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.ok(method)) < count:
            assert time.monotonic() < deadline, f"{len(self.ok(method))} of {count}: {self.seen}"
            time.sleep(0.02)
        return self.ok(method)


def _handler(forge: Forge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.command, self.path, headers, json.loads(raw) if raw else None, raw)
            with forge.lock:
                forge.seen.append(seen)
                failure = forge.failures.pop(0) if forge.failures else None
                forge.next_id += 1
                made = forge.next_id
            if failure == "slow":  # the client gives up first; never counted as answered
                time.sleep(forge.slow)
                return
            if forge.delay:
                time.sleep(forge.delay)
            if failure is not None and failure != 200:
                self.send_response(int(failure))
                self.end_headers()
                self.wfile.write(b'{"message": "forge trouble"}')
                return
            seen.headers["x-answered"] = "ok"
            comment = self.path.rsplit("/", 1)[-1]
            body = json.dumps({"id": int(comment) if comment.isdigit() else made}).encode()
            self.send_response(201 if self.command == "POST" else 200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PATCH = do_PUT = _answer

    return Handler


@contextmanager
def serve() -> Iterator[Forge]:
    forge = Forge()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(forge))
    server.daemon_threads = True
    forge.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()
