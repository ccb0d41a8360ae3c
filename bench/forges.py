"""Forge updates under load (issue 16): 1,000 builds finishing while the forge answers in
200 ms. Bar: finish-to-stopped p99 within 10 % of the same builds with no forge, every update
delivered once, in order per build.

    .venv/bin/python -m bench.forges [--builds 1000] [--delay 0.2] [--rounds 6]
        [--database-url URL | --postgres] [--sender process|inline] [--control]

In-process: the builds go through the runner's own service calls (claim, start_running,
finish), so "finish-to-stopped" is the time `Runs.finish` takes to commit the stop, the
transaction the outbox row joins. The forge is a threaded local HTTP server.

Each round has three phases of its builds: no forge (no credential: no outbox row); the
outbox's rows written with no sender running (what D29's row in the build's transaction
costs by itself); and a sender at work, started for the phase as `serve` starts it, that
delivers everything before the next round. Their ratios split what a forge costs a finish
into the row's share and the sender's. --control runs the rounds with no forge in any phase:
its ratios are what the machine alone moves a p99 by from one phase to the next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
from starlette.testclient import TestClient

from buildsd import migrations
from buildsd.app import create_app
from buildsd.config import load_settings
from buildsd.forges.sender_process import sender_for

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "bench-forges-token-0123456789abcdefghij"
BASE = f"/client/v4/accounts/{ACCOUNT}/builds"


def _serve(delay: float, port: Any) -> None:
    """The forge's process: answers every status after `delay`, records (commit, description)
    in arrival order, and lists them at GET /_seen (the count at GET /_count)."""
    lock = threading.Lock()
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with lock:
                found = list(seen)
            self._reply(200, json.dumps(len(found) if self.path == "/_count" else found).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            time.sleep(delay)
            with lock:
                seen.append((self.path.rsplit("/", 1)[-1], body["description"]))
            self._reply(201, b"{}")

    class Server(ThreadingHTTPServer):
        # A backlog for a sender's 32 connections at once: socketserver's 5 had Linux reset
        # some of a new sender's first burst (ReadError, then a retry).
        request_queue_size = 64
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    port.put(server.server_address[1])
    server.serve_forever()


class Forge:
    """A forge in a process of its own: its 32 request threads must not take the GIL from the
    event loop under test (in-process, they added ~25 ms to PostgreSQL's p99: a finish awaits
    several round trips, each a GIL hand-back, where SQLite's runs inline)."""

    def __init__(self, delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        port = context.Queue()
        self.process = context.Process(target=_serve, args=(delay, port), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{port.get(timeout=30)}"

    def count(self) -> int:
        return int(httpx.get(self.url + "/_count").json())

    def seen(self) -> list[tuple[str, str]]:
        return [tuple(pair) for pair in httpx.get(self.url + "/_seen").json()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 3)


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _finish_all(
    client: TestClient, services: Any, trigger: str, builds: int, first: int
) -> list[float]:
    """Queue `builds` builds, run each through claim → running → success; finish times (ms)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for n in range(first, first + builds):
        body = {"branch": "main", "commit_hash": f"{n:040x}"}
        _ok(client.post(f"{BASE}/triggers/{trigger}/builds", json=body, headers=auth))

    async def run() -> list[float]:
        times = []
        for _ in range(builds):
            job = await services.runs.claim("bench")
            await services.runs.start_running(job)
            started = time.perf_counter()
            await services.runs.finish(job, "success")
            times.append((time.perf_counter() - started) * 1000)
        return times

    return list(client.portal.call(run))  # type: ignore[union-attr]


def _setup(client: TestClient) -> str:
    """A connection, a build token and a trigger; the trigger's uuid."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    repo = {
        "provider_account_id": "1",
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": "2",
        "repo_name": "my-worker",
    }
    conn = _ok(client.put(f"{BASE}/repos/connections", json=repo, headers=auth))
    secret = "x" * 40
    token = _ok(
        client.post(
            f"{BASE}/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": secret,
                "cloudflare_token_id": "y",
            },
            headers=auth,
        )
    )
    return str(
        _ok(
            client.post(
                f"{BASE}/triggers",
                json={
                    "external_script_id": "ab" * 16,
                    "repo_connection_uuid": conn["repo_connection_uuid"],
                    "build_token_uuid": token["build_token_uuid"],
                    "trigger_name": "t",
                    "branch_includes": ["main"],
                    "build_command": "",
                    "deploy_command": "true",
                },
                headers=auth,
            )
        )["trigger_uuid"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=6, help="best a multiple of 3")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true", help="a throwaway local database")
    parser.add_argument(
        "--sender",
        choices=["process", "inline"],
        default="process",
        help="where the sender runs (BUILDSD_SENDER; process is what serve and worker ship)",
    )
    parser.add_argument(
        "--control", action="store_true", help="no forge in any phase (the noise floor)"
    )
    args = parser.parse_args()
    if args.postgres:
        from bench import servers

        if servers.postgres_version() is None:
            print("PostgreSQL not running: the forges bench on PostgreSQL skipped")
            return
        with servers.postgres_database("buildsd_bench_forges") as url:
            run(args, url)
        return
    run(args, args.database_url)


PHASES = ["plain", "rows", "sender"]
DRAIN_SECONDS = 300  # a sender phase's updates all sent within this, or the bench fails


class Phases:
    """The phases' finish times (ms) and buildsd's process CPU seconds while they ran."""

    def __init__(self, finish: Any, per_phase: int) -> None:
        self._finish = finish  # (builds, first build's number) → finish times
        self._per_phase = per_phase
        self.times: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self.cpu = dict.fromkeys(self.times, 0.0)
        self.rounds: list[dict[str, float]] = []

    def run(self, phase: str, first: int) -> list[float]:
        cpu = time.process_time()
        times: list[float] = self._finish(self._per_phase, first)
        self.cpu[phase] += time.process_time() - cpu
        self.times[phase] += times
        return times

    def p(self, phase: str, pct: float) -> float:
        return percentile(self.times[phase], pct)

    def ratio(self, over: str, under: str) -> float:
        return round(self.p(over, 99) / self.p(under, 99), 3)

    def cpu_ms(self, phase: str) -> float:
        return round(self.cpu[phase] * 1000 / len(self.times[phase]), 2)


def run(args: argparse.Namespace, database_url: str) -> None:
    forge = Forge(args.delay)
    per_round = args.builds // args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        migrations.upgrade(url)
        settings = load_settings(
            env={},
            data_dir=tmp,
            database_url=url,
            bootstrap_token=TOKEN,
            bootstrap_account_id=ACCOUNT,
            rate_limit=0,
            runner_slots=0,
            max_concurrent_builds_per_account=1_000_000,
            # The app's own sender finds nothing at start-up and does not look again: the
            # bench starts one for each sender phase.
            outbox_poll_seconds=10**6,
            sender="inline",
        )
        sending = msgspec.structs.replace(settings, outbox_poll_seconds=0.05, sender=args.sender)
        app = create_app(settings)
        with TestClient(app) as client:
            services = app.state.services
            portal: Any = client.portal
            portal.call(services.admin.bootstrap)
            trigger = _setup(client)
            phases = Phases(
                lambda builds, first: _finish_all(client, services, trigger, builds, first),
                per_round,
            )

            async def drop_pending() -> None:
                """The rows phase's updates, never to be sent (the next sender would)."""
                async with services.db.transaction() as conn:
                    await conn.run("DELETE FROM outbox WHERE state = 'pending'", {})

            async def sender_phase(first: int, expected: int) -> list[float]:
                """The phase's builds with a sender at work, then until it has sent all."""
                stopping = asyncio.Event()
                sender = asyncio.create_task(sender_for(services.outbox, sending).run(stopping))
                try:
                    times = await asyncio.to_thread(phases.run, "sender", first)
                    deadline = time.monotonic() + DRAIN_SECONDS
                    while (count := await asyncio.to_thread(forge.count)) < expected:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{count} of {expected} updates in {DRAIN_SECONDS} s")
                        await asyncio.sleep(0.05)
                finally:
                    stopping.set()
                    await sender
                return times

            began = time.perf_counter()
            delivered = 0
            for n in range(args.rounds):
                times: dict[str, list[float]] = {}
                # Each phase goes first in a third of the rounds: the first of a round follows
                # the last one's drain, a rest that made PostgreSQL's first phase the fastest
                # even in --control.
                for k, phase in enumerate(PHASES[n % 3 :] + PHASES[: n % 3]):
                    first = (3 * n + k) * per_round
                    if phase == "plain" or args.control:
                        portal.call(services.outbox.unset_credential, ACCOUNT, "github")
                    else:
                        portal.call(
                            services.outbox.set_credential, ACCOUNT, "github", "tk", forge.url
                        )
                    if phase == "sender" and not args.control:
                        delivered += 4 * per_round
                        times[phase] = portal.call(sender_phase, first, delivered)
                    else:
                        times[phase] = phases.run(phase, first)
                    if phase == "rows":
                        portal.call(drop_pending)
                p99 = {phase: percentile(values, 99) for phase, values in times.items()}
                phases.rounds.append(
                    {
                        "rows_over_plain": round(p99["rows"] / p99["plain"], 3),
                        "sender_over_rows": round(p99["sender"] / p99["rows"], 3),
                        "sender_over_plain": round(p99["sender"] / p99["plain"], 3),
                    }
                )
            drained = time.perf_counter() - began
            time.sleep(1)  # anything sent twice would arrive now
    seen = forge.seen()
    forge.stop()
    by_build: dict[str, list[str]] = {}
    for commit, description in seen:
        by_build.setdefault(commit, []).append(description)
    order = ["Build queued", "Build in progress", "Build in progress", "Build succeeded"]
    result = {
        "database": "postgresql" if url.startswith("postgresql") else "sqlite",
        "sender": "none (control)" if args.control else args.sender,
        "builds_per_phase": per_round * args.rounds,
        "rounds": args.rounds,
        "forge_delay_ms": args.delay * 1000,
        **{
            f"finish_p{pct}_ms_{phase}": phases.p(phase, pct)
            for phase in phases.times
            for pct in (50, 99)
        },
        # The bar: a sender at work against no forge at all; and its two shares.
        "p99_ratio": phases.ratio("sender", "plain"),
        "p99_ratio_rows_over_plain": phases.ratio("rows", "plain"),
        "p99_ratio_sender_over_rows": phases.ratio("sender", "rows"),
        "p99_ratios_per_round": phases.rounds,
        # CPU of buildsd's process (queueing the builds over HTTP, running them, and with an
        # inline sender the sender beside them) per build; a sender process's own is not in it.
        **{f"process_cpu_ms_per_build_{phase}": phases.cpu_ms(phase) for phase in phases.times},
        "updates_expected": delivered,
        "updates_received": len(seen),
        "builds_in_order_exactly_once": sum(v == order for v in by_build.values()),
        "seconds_from_first_build_to_all_delivered": round(drained, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
