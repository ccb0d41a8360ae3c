"""Hostile HTTP against a real `buildsd serve`: what the app never sees (headers that are too
large, too many or too slow: answered by api/protocol.py with 431 or a closed connection) and
what it does (bodies, odd paths), with the server's memory measured around it all.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ACCOUNT, TOKEN
from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0  # BUILDSD_HEADER_TIMEOUT_SECONDS of these servers
CLOSE_WITHIN = HEADER_TIMEOUT + 4  # slack for a busy machine
MIB = 1024 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUILDS = f"/client/v4/accounts/{ACCOUNT}/builds"


def rss_mib(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    kib = next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]
    return int(kib) / 1024


def connect(server: Server) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def responses(received: bytes) -> list[tuple[int, dict[str, Any] | None]]:
    """The answers in what a connection received, by their Content-Length."""
    found = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        fields = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = int(fields.get(b"content-length", len(rest)))
        body, received = rest[:length], rest[length:]
        found.append((int(lines[0].split(b" ", 2)[1]), json.loads(body) if body else None))
    return found


def exchange(server: Server, data: bytes) -> tuple[int, dict[str, Any] | None, float]:
    """Send raw bytes and read until the server closes: (status, JSON body, seconds) of the
    one answer (0 and None when the server closed without answering)."""
    started = time.monotonic()
    received = b""
    with connect(server) as sock:
        with contextlib.suppress(OSError):  # refused while still sending: the answer is there
            sock.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    elapsed = time.monotonic() - started
    answers = responses(received)
    assert len(answers) <= 1, answers
    return (*(answers[0] if answers else (0, None)), elapsed)


def refused_431(server: Server, data: bytes) -> None:
    status, body, _ = exchange(server, data)
    assert status == 431, (status, body)
    assert body is not None and body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 6003 and body["errors"][0]["error_chain"][0]["message"]


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed the connection (it must, within `seconds`)."""
    started = time.monotonic()
    readable, _, _ = select.select([sock], [], [], seconds)
    assert readable, f"connection still open after {seconds} s"
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(65536) == b""  # closed, with nothing said: there was no request
    return time.monotonic() - started


def healthy(server: Server) -> None:
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def get(header_lines: bytes, target: bytes = b"/healthz") -> bytes:
    return (
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + header_lines + b"Connection: close\r\n\r\n"
    )


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(BUILDSD_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT))


def test_oversized_and_too_many_headers_get_431(server: Server) -> None:
    before = rss_mib(server)
    refused_431(server, get(b"X-Big: " + b"a" * 100_000 + b"\r\n"))
    refused_431(server, get(b"".join(b"X-H%d: v\r\n" % i for i in range(1000))))
    refused_431(server, get(b"", b"/healthz?" + b"a" * 100_000))  # the request line counts
    for _ in range(5):  # 10 MB each, refused at 64 KiB: never buffered
        refused_431(server, get(b"X-Big: " + b"a" * 10_000_000 + b"\r\n"))
    healthy(server)
    # Not HTTP at all: uvicorn's 400, in the envelope.
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ):
        status, body, _ = exchange(server, garbage)
        assert status == 400 and body is not None and body["errors"][0]["code"] == 6003, body
    # A request before the oversized one on the same connection is answered first.
    with connect(server) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            + get(b"".join(b"X-H%d: v\r\n" % i for i in range(200)))
        )
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    assert [status for status, _ in responses(received)] == [200, 431]
    # Near the limit is fine: 100 fields and 60 KB.
    status, _, _ = exchange(server, get(b"".join(b"X-H%d: v\r\n" % i for i in range(97))))
    assert status == 200
    status, _, _ = exchange(server, get(b"X-Big: " + b"a" * 60_000 + b"\r\n"))
    assert status == 200
    assert rss_mib(server) - before < 50


def test_slow_or_silent_clients_are_closed_and_the_server_stays_up(server: Server) -> None:
    before = rss_mib(server)
    # Connected, nothing sent.
    with connect(server) as sock:
        assert closed_within(sock, CLOSE_WITHIN) >= HEADER_TIMEOUT * 0.5
    # Headers started, then stopped.
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed_within(sock, CLOSE_WITHIN)
    # Headers dribbled a byte at a time: the deadline runs from the first byte, not the last.
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed = False
        while time.monotonic() - started < CLOSE_WITHIN and not closed:
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                try:
                    closed = sock.recv(1) == b""
                except ConnectionResetError:
                    closed = True
        assert closed, "a client dribbling headers kept its connection"
    # Many at once, while others are served.
    idle = [connect(server) for _ in range(200)]
    try:
        healthy(server)
        for sock in idle:
            closed_within(sock, CLOSE_WITHIN)
    finally:
        for sock in idle:
            sock.close()
    # A kept-alive connection gets the same deadline for its next request's headers.
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):  # the whole answer
            received += sock.recv(65536)
        assert responses(received)[0][0] == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed_within(sock, CLOSE_WITHIN)
    healthy(server)
    assert rss_mib(server) - before < 50


BODY_TIMEOUT = 2.5  # BUILDSD_BODY_TIMEOUT_SECONDS of the server below: longer than its headers'


def dribble(sock: socket.socket, head: bytes, parts: list[bytes], every: float) -> float:
    """Send the head, then each part `every` seconds apart (stopping if the server closes);
    seconds from the head until the server's answer began."""
    sock.sendall(head)
    started = time.monotonic()
    for part in parts:
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            break
        with contextlib.suppress(OSError):
            sock.sendall(part)
    select.select([sock], [], [], CLOSE_WITHIN + BODY_TIMEOUT)
    return time.monotonic() - started


def read_all(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_slow_body_gets_408_and_its_connection_closed(
    start_server: Callable[..., Server],
) -> None:
    """A body sent a byte at a time held its connection forever, on the unauthenticated webhook
    routes too; now it has BUILDSD_BODY_TIMEOUT_SECONDS from the end of its headers."""
    server = start_server(
        BUILDSD_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        BUILDSD_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        BUILDSD_GITHUB_WEBHOOK_SECRET="s" * 32,
    )
    body = json.dumps(
        {
            "provider_account_id": "1",
            "provider_account_name": "o",
            "provider_type": "github",
            "repo_id": "1",
            "repo_name": "r",
        }
    ).encode()
    put = (
        f"PUT {BUILDS}/repos/connections HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
    ).encode()
    hook = b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
    sized = b"Content-Length: %d\r\n\r\n" % len(body)
    chunked = b"Transfer-Encoding: chunked\r\n\r\n"
    bytewise = [body[i : i + 1] for i in range(len(body))]
    for head, parts in [
        (put + sized, bytewise),  # a byte every 0.2 s: would take 20 s
        (hook + sized, bytewise),
        (put + chunked, [b"1\r\n{\r\n"] * 100),  # chunks that never end
        (put + sized, []),  # headers, then silence
    ]:
        with connect(server) as sock:
            waited = dribble(sock, head, parts, 0.2)
            status, answer = responses(read_all(sock))[0]  # read to the end: it closed
        assert status == 408, (head, answer)
        assert answer is not None and answer["success"] is False and answer["result"] is None
        assert answer["errors"][0]["code"] == 12002
        assert "did not arrive within 2.5 s" in answer["errors"][0]["error_chain"][0]["message"]
        assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + CLOSE_WITHIN, waited
    # Slower than the headers' timeout but within the body's: served.
    with connect(server) as sock:
        third = len(body) // 3
        thirds = [body[:third], body[third : 2 * third], body[2 * third :]]
        dribble(sock, put + b"Connection: close\r\n" + sized, thirds, 0.6)  # 1.8 s in all
        assert responses(read_all(sock))[0][0] == 200
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        listed = client.get(BUILDS + "/repos/connections").json()
    assert listed["result_info"]["total_count"] == 1  # only the one whose body arrived
    healthy(server)


def test_hostile_bodies_and_paths_on_a_real_server(server: Server) -> None:
    before = rss_mib(server)
    url = server.url + BUILDS
    with httpx.Client(timeout=30, headers=AUTH) as client:
        for _ in range(10):
            for body in (
                b"[" * 100_000 + b"]" * 100_000,
                b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                json.dumps({"repo_name": "x" * 900_000}).encode(),
                json.dumps([0] * 300_000).encode(),
            ):
                response = client.put(url + "/repos/connections", content=body)
                assert response.status_code == 400, response.text
                assert response.json()["errors"][0]["code"] == 12002
            big = b'{"repo_name": "' + b"x" * (2 * MIB) + b'"}'
            response = client.put(url + "/repos/connections", content=big)
            assert response.status_code == 413 and response.json()["errors"][0]["code"] == 12002

            def chunks(data: bytes = big) -> Any:
                for start in range(0, len(data), 64 * 1024):
                    yield data[start : start + 64 * 1024]

            response = client.post(url + "/tokens", content=chunks())  # no Content-Length
            assert response.status_code == 413 and response.json()["errors"][0]["code"] == 12002
        for listing in ("/repos/connections", "/tokens", "/triggers", "/webhook_deliveries"):
            assert client.get(url + listing).json()["result"] == []
    # Paths as sent, unnormalized: dot segments, encoded slashes and NUL, absolute form.
    for target in (
        BUILDS + "/triggers/../tokens",
        BUILDS + "/triggers/..%2F..%2Ftokens",
        BUILDS + "/triggers/%00",
        "/client/v4/../../../etc/passwd",
        "//client/v4/accounts/" + ACCOUNT,
        "http://evil.example" + BUILDS + "/triggers/%2e%2e",
    ):
        request = (
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        status, body, _ = exchange(server, request)
        assert 400 <= status < 500, (target, status, body)
        assert body is not None and body["success"] is False, (target, body)
    healthy(server)
    assert rss_mib(server) - before < 50
