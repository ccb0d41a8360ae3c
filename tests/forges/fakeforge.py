"""A real local HTTP server standing in for GitHub, GitLab and Gitea: it records every request
and answers as a test programs it (failures first, delays, then success).

With `app_key` set it is also GitHub's App side: `POST /app/installations/{id}/access_tokens`
and `GET /repos/{o}/{r}/installation` accept only a JWT signed by that key for `app_id`
(verified with the public key, as GitHub does), and every other request must then carry an
installation token it issued. Those two endpoints are not subject to `failures`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


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
    failure_body: bytes = b'{"message": "forge trouble"}'
    delay: float = 0.0
    slow: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000
    # GitHub's App side: the App's public key and ID, its installation, the tokens issued.
    app_key: rsa.RSAPublicKey | None = None
    app_id: str = ""
    installation_id: int = 4242
    token_seconds: int = 3600
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

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


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def valid_jwt(forge: Forge, header: str) -> bool:
    """GitHub's checks of an App JWT: RS256 by the App's key, issued by the App, not expired,
    at most ten minutes long."""
    assert forge.app_key is not None
    try:
        head, claims, signature = header.removeprefix("Bearer ").split(".")
        forge.app_key.verify(
            _unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        found = json.loads(_unb64(claims))
        assert json.loads(_unb64(head)) == {"alg": "RS256", "typ": "JWT"}
    except (ValueError, InvalidSignature, AssertionError):
        return False
    now = time.time()
    return (
        found.get("iss") == forge.app_id
        and found["iat"] <= now < found["exp"]
        and found["exp"] - found["iat"] <= 600
    )


_INSTALLATION = re.compile(r"^/repos/[^/]+/[^/]+/installation$")
_ACCESS_TOKENS = re.compile(r"^/app/installations/(\d+)/access_tokens$")


def _app_answer(forge: Forge, seen: Seen) -> tuple[int, dict[str, Any]] | None:
    """The App endpoints' answer, an App-mode refusal, or None to answer as usual."""
    if forge.app_key is None:
        return None
    auth = seen.headers.get("authorization", "")
    wanted = _ACCESS_TOKENS.match(seen.path)
    if (seen.method == "GET" and _INSTALLATION.match(seen.path)) or wanted:
        if not valid_jwt(forge, auth):
            return 401, {"message": "A JSON web token could not be decoded"}
        if wanted is None:
            return 200, {"id": forge.installation_id}
        if int(wanted.group(1)) != forge.installation_id:
            return 404, {"message": "Not Found"}
        with forge.lock:
            token = f"ghs_installation-token-{len(forge.issued) + 1:04d}"
            forge.issued.append(token)
        expires = datetime.fromtimestamp(time.time() + forge.token_seconds, tz=UTC)
        return 201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
    token = auth.removeprefix("Bearer ")
    if token not in forge.issued or token in forge.revoked:
        return 401, {"message": "Bad credentials"}
    return None


def _handler(forge: Forge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.command, self.path, headers, json.loads(raw) if raw else None, raw)
            app = _app_answer(forge, seen)
            with forge.lock:
                forge.seen.append(seen)
            if app is not None:
                if app[0] < 300:
                    seen.headers["x-answered"] = "app"
                self._send(*app)
                return
            with forge.lock:
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
                self.wfile.write(forge.failure_body)
                return
            seen.headers["x-answered"] = "ok"
            comment = self.path.rsplit("/", 1)[-1]
            answer = {"id": int(comment) if comment.isdigit() else made}
            self._send(201 if self.command == "POST" else 200, answer)

        def _send(self, status: int, answer: dict[str, Any]) -> None:
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PATCH = do_PUT = do_GET = _answer

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
