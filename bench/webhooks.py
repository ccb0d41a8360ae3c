"""Webhook acknowledgement under bursts of concurrent deliveries, and delivery → build queued.

Each burst opens BURST connections at once, each sending one signed GitHub push (its own
delivery id and commit) with `Connection: close`, as GitHub does; the latency of a delivery
runs from before its connect to the last byte of its answer. Between bursts the server is left
to match what it stored. Then the first burst is delivered again (same ids): nothing new may be
built. Every delivery's matching time comes from the server's own record (received_on →
processed_on, the transaction that queues its build). The same bursts against the bare ASGI app
(bench/bare.py, same client, same run) give the scale: what accepting BURST connections at once
costs on this machine before any webhook is handled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import selectors
import socket
import time
from typing import Any

from bench.builds import GIT_OWNER, GIT_REPO, percentile
from bench.client import Client
from bench.servers import HOST, Server, ServerError

SECRET = "bench-webhook-secret-0123456789"
BURSTS = 5
BURST = 200
SETTLE_TIMEOUT_S = 60.0
SETTLE_POLL_S = 0.05
BARE_PAUSE_S = 0.5  # between two bursts against the bare app (buildsd matches meanwhile)
REDELIVERY_WAIT_S = 1.0
PAGE = 200  # deliveries per page of the extension list (its largest)


def _sha(text: str) -> str:
    """A commit-like id (40 hex): git's hash, not a secret."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def push_payload(n: int) -> bytes:
    """A GitHub `push` of one commit to main (the fields buildsd reads, and the usual rest)."""
    sha = _sha(f"bench-{n}")
    person = {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"}
    commit = {
        "id": sha,
        "tree_id": _sha(f"tree-{n}"),
        "distinct": True,
        "message": f"Change number {n}\n\nA longer description of the change.",
        "timestamp": "2026-11-28T10:00:00+00:00",
        "url": f"https://github.com/{GIT_OWNER}/{GIT_REPO}/commit/{sha}",
        "author": person,
        "committer": person,
        "added": [],
        "removed": [],
        "modified": ["src/index.ts", "package.json"],
    }
    owner = {"login": GIT_OWNER, "id": 41612145, "type": "Organization"}
    payload = {
        "ref": "refs/heads/main",
        "before": _sha(f"before-{n}"),
        "after": sha,
        "repository": {
            "id": 1,
            "node_id": "R_kgDOAAAAAQ",
            "name": GIT_REPO,
            "full_name": f"{GIT_OWNER}/{GIT_REPO}",
            "private": False,
            "owner": owner,
            "html_url": f"https://github.com/{GIT_OWNER}/{GIT_REPO}",
            "default_branch": "main",
        },
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "organization": owner,
        "sender": {"login": "ada", "id": 583231, "type": "User", "site_admin": False},
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{GIT_OWNER}/{GIT_REPO}/compare/a...b",
        "commits": [commit],
        "head_commit": commit,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def delivery(port: int, n: int) -> bytes:
    """The whole HTTP request of delivery n, signed with SECRET."""
    body = push_payload(n)
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST /webhooks/github HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "User-Agent: GitHub-Hookshot/bench\r\nContent-Type: application/json\r\n"
        f"X-GitHub-Event: push\r\nX-GitHub-Delivery: bench-{n:06d}\r\n"
        f"X-Hub-Signature-256: sha256={signature}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def burst(port: int, requests: list[bytes]) -> list[tuple[float, int, bytes]]:
    """Send every request on its own connection at once; (seconds, status, body) of each.

    Plain non-blocking sockets and one epoll: an asyncio client spent ~50 ms of its own on a
    burst of 200 (a bare ASGI app measured 50–100 ms through it), this one a few.
    """
    selector = selectors.DefaultSelector()
    started: list[float] = []
    unsent: list[bytes] = []
    answers: list[bytearray] = []
    finished: list[float] = [0.0] * len(requests)
    for n, request in enumerate(requests):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        started.append(time.perf_counter())
        sock.connect_ex((HOST, port))
        selector.register(sock, selectors.EVENT_WRITE, n)
        unsent.append(request)
        answers.append(bytearray())
    open_ = len(requests)
    deadline = time.perf_counter() + SETTLE_TIMEOUT_S
    while open_ and time.perf_counter() < deadline:
        for key, events in selector.select(timeout=1.0):
            n, conn = key.data, key.fileobj
            assert isinstance(conn, socket.socket)
            if events & selectors.EVENT_WRITE:
                unsent[n] = unsent[n][conn.send(unsent[n]) :]
                if not unsent[n]:
                    selector.modify(conn, selectors.EVENT_READ, n)
                continue
            chunk = conn.recv(65536)
            if chunk:
                answers[n] += chunk
                continue
            finished[n] = time.perf_counter()  # Connection: close: the answer ends here
            selector.unregister(conn)
            conn.close()
            open_ -= 1
    selector.close()
    out = []
    for n, answer in enumerate(answers):
        head, _, body = bytes(answer).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
        elapsed = finished[n] - started[n] if finished[n] else SETTLE_TIMEOUT_S
        out.append((elapsed, status, body))
    return out


def _all_deliveries(client: Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        items, info = client.page(f"/webhook_deliveries?per_page={PAGE}&page={page}")
        found += items
        if page >= int(info.get("total_pages") or 0) or not items:
            return found
        page += 1


def _settle(client: Client, expected: int) -> float:
    """Seconds until the server has matched `expected` accepted deliveries.

    The delivery list holds a delivery once it is matched (its match row is written in the
    transaction that queues its build), so a one-item page's total_count is enough: reading
    every delivery each time would load the server while it matches.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < SETTLE_TIMEOUT_S:
        if _matched(client) >= expected:
            return time.perf_counter() - started
        time.sleep(SETTLE_POLL_S)
    raise ServerError(
        f"{_matched(client)} of {expected} deliveries matched after {SETTLE_TIMEOUT_S:.0f} s"
    )


def _matched(client: Client) -> int:
    return int(client.page("/webhook_deliveries?per_page=1")[1].get("total_count") or 0)


def _ms_between(start: str, end: str) -> float:
    def ms(value: str) -> float:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000

    return ms(end) - ms(start)


def baseline(server: Server) -> dict[str, Any]:
    """The same BURSTS bursts of BURST deliveries against the bare ASGI app (fixed body, 200)."""
    problems: list[str] = []
    latencies: list[float] = []
    burst_p99: list[float] = []
    cpu = server.cpu_seconds()
    for b in range(BURSTS):
        if b:
            time.sleep(BARE_PAUSE_S)
        requests = [delivery(server.port, b * BURST + i) for i in range(BURST)]
        times, bad = _one_burst(server.port, requests)
        latencies += times
        burst_p99.append(percentile(times, 99))
        if bad:
            problems.append(f"burst {b + 1}: {len(bad)} answers not 200, first {bad[0]!r}")
    cpu = server.cpu_seconds() - cpu
    return {
        "bare_p50_ms": round(percentile(latencies, 50), 1),
        "bare_p99_ms": round(percentile(latencies, 99), 1),
        "bare_max_ms": round(max(latencies), 1),
        "bare_burst_p99_ms": [round(value, 1) for value in burst_p99],
        "bare_us_per_delivery": round(cpu / len(latencies) * 1e6, 1),
        "bare_rss_mb": server.memory_mb().get("VmRSS"),
        "bare_errors": len(problems),
        "bare_problems": problems,
    }


def _one_burst(port: int, requests: list[bytes]) -> tuple[list[float], list[tuple[int, bytes]]]:
    """A burst's latencies in ms, and the (status, start of body) of answers that were not 200."""
    answers = burst(port, requests)
    times = [elapsed * 1000 for elapsed, _, _ in answers]
    bad = [(status, body[:200]) for _, status, body in answers if status != 200]
    return times, bad


def ack_latency(server: Server, tag: str) -> dict[str, Any]:
    """BURSTS bursts of BURST deliveries, then the first burst again; figures and problems."""
    problems: list[str] = []
    latencies: list[float] = []
    burst_p99: list[float] = []
    settle_s: list[float] = []
    first_burst: list[bytes] = []
    with Client(server) as client:
        for b in range(BURSTS):
            requests = [delivery(server.port, b * BURST + i) for i in range(BURST)]
            first_burst = first_burst or requests
            times, bad = _one_burst(server.port, requests)
            latencies += times
            burst_p99.append(percentile(times, 99))
            if bad:
                problems.append(f"burst {b + 1}: {len(bad)} answers not 200, first {bad[0]!r}")
            settle_s.append(_settle(client, (b + 1) * BURST))
        deliveries = _all_deliveries(client)
        builds_before = client.page(f"/workers/{tag}/builds?per_page=1")[1]["total_count"]
        again = burst(server.port, first_burst)
        statuses = [json.loads(body)["result"]["status"] for _, s, body in again if s == 200]
        time.sleep(REDELIVERY_WAIT_S)  # a redelivery that started a build would have by now
        builds_after = client.page(f"/workers/{tag}/builds?per_page=1")[1]["total_count"]
    built = [d for d in deliveries for x in d["decisions"] if x["decision"] == "built"]
    distinct = {d["delivery_id"] for d in deliveries}
    if len(deliveries) != BURSTS * BURST or len(distinct) != len(deliveries):
        problems.append(
            f"{len(deliveries)} deliveries listed ({len(distinct)} distinct ids) for "
            f"{BURSTS * BURST} sent"
        )
    if len(built) != BURSTS * BURST or builds_before != BURSTS * BURST:
        problems.append(f"{len(built)} deliveries built, {builds_before} builds listed")
    if statuses.count("duplicate") != BURST or builds_after != builds_before:
        problems.append(
            f"redelivery: {statuses.count('duplicate')} of {BURST} duplicate, "
            f"builds {builds_before} → {builds_after}"
        )
    matched = [_ms_between(d["received_on"], d["processed_on"]) for d in deliveries]
    return {
        "deliveries": len(latencies),
        "bursts": BURSTS,
        "burst": BURST,
        "ack_p50_ms": round(percentile(latencies, 50), 1),
        "ack_p99_ms": round(percentile(latencies, 99), 1),
        "ack_max_ms": round(max(latencies), 1),
        "burst_p99_ms": [round(value, 1) for value in burst_p99],
        "matched_p50_ms": round(percentile(matched, 50), 1),
        "matched_p99_ms": round(percentile(matched, 99), 1),
        "settle_s": [round(value, 2) for value in settle_s],
        "builds": builds_before,
        "redelivered": len(first_burst),
        "redelivery_p99_ms": round(percentile([e * 1000 for e, _, _ in again], 99), 1),
        "redelivered_duplicates": statuses.count("duplicate"),
        "errors": len(problems),
        "problems": problems,
    }
