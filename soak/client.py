"""HTTP to the live servers: round-robin, retry elsewhere when a server dies, count everything."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from soak.cluster import ACCOUNT_ID, TOKEN, Cluster

BUILDS = f"/client/v4/accounts/{ACCOUNT_ID}/builds"
RETRY_FOR_S = 45.0  # a restart takes a second or two; give up on a request after this


@dataclass
class Stats:
    """What the clients saw: attempts and acknowledgements by operation, errors by kind."""

    requests: Counter[str] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    abandoned: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # every 5xx: a finding
    unexpected: list[str] = field(default_factory=list)  # 4xx we did not expect
    leaks: list[str] = field(default_factory=list)  # a secret in a response body
    responses_scanned: int = 0


def error_kind(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection reset"
    return f"other ({type(exc).__name__})"


class Api:
    """One shared httpx.AsyncClient; each call goes to the next live server."""

    def __init__(self, cluster: Cluster, stats: Stats, secrets: list[str]) -> None:
        self.cluster = cluster
        self.stats = stats
        self.secrets = secrets  # values no response may contain (grows as the run makes them)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(15.0, connect=3.0),
            headers={"Authorization": f"Bearer {TOKEN}"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self._turn = itertools.count()

    async def close(self) -> None:
        await self.http.aclose()

    def _pick(self, avoid: str | None) -> str:
        servers = self.cluster.live_servers() or self.cluster.servers()
        choices = [s for s in servers if s.url != avoid] or servers
        return choices[next(self._turn) % len(choices)].url

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        quiet: tuple[int, ...] = (),
    ) -> httpx.Response | None:
        """The first `ok` answer, retried on another server after a connection error or a 5xx;
        None after another 4xx (counted as unexpected unless in `quiet`) or RETRY_FOR_S."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RETRY_FOR_S
        failed_on: str | None = None
        while True:
            while not self.cluster.live_servers() and loop.time() < give_up:
                await asyncio.sleep(0.05)  # every server is down (SQLite): wait for a restart
            base = self._pick(failed_on)
            self.stats.requests[op] += 1
            try:
                reply = await self.http.request(
                    method, base + path, json=json, content=content, headers=headers
                )
            except httpx.HTTPError as exc:
                self.stats.errors[error_kind(exc)] += 1
                failed_on = base
            else:
                self._scan(op, reply)
                if reply.status_code in ok:
                    self.stats.acknowledged[op] += 1
                    return reply
                if reply.status_code >= 500:
                    self.stats.errors["5xx"] += 1
                    self.stats.server_errors.append(
                        f"{method} {path} → {reply.status_code} {reply.text[:300]}"
                    )
                    failed_on = base
                else:
                    if reply.status_code not in quiet:
                        self.stats.errors["4xx unexpected"] += 1
                        self.stats.unexpected.append(
                            f"{method} {path} → {reply.status_code} {reply.text[:300]}"
                        )
                    return None
            if loop.time() >= give_up:
                self.stats.abandoned[op] += 1
                return None
            await asyncio.sleep(0.1)

    def _scan(self, op: str, reply: httpx.Response) -> None:
        self.stats.responses_scanned += 1
        text = reply.text
        for secret in self.secrets:
            if secret in text:
                self.stats.leaks.append(f"{op}: {reply.request.url.path} {reply.status_code}")

    async def result(self, op: str, method: str, path: str, **kwargs: Any) -> Any:
        """The envelope's `result` of an acknowledged call, or None."""
        reply = await self.call(op, method, BUILDS + path, **kwargs)
        return None if reply is None else reply.json()["result"]
