"""Forge updates under load (issue 16): 1,000 builds finishing while the forge answers in
200 ms. Bar: finish-to-stopped p99 within 10 % of the same builds with no forge, every update
delivered once, in order per build.

    .venv/bin/python -m bench.forges [--builds 1000] [--delay 0.2] [--database-url URL]
        [--postgres] [--sender process|inline]

In-process: the builds go through the runner's own service calls (claim, start_running,
finish), so "finish-to-stopped" is the time `Runs.finish` takes to commit the stop, the
transaction the outbox row joins. The forge is a threaded local HTTP server.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from buildsd import migrations
from buildsd.app import create_app
from buildsd.config import load_settings

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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
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


def _finish_all(client: TestClient, services: Any, trigger: str, builds: int, first: int) -> list:
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
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--postgres", action="store_true", help="a throwaway local database")
    parser.add_argument(
        "--sender",
        choices=["process", "inline"],
        default="process",
        help="where the sender runs (BUILDSD_SENDER; process is what serve and worker ship)",
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


def run(args: argparse.Namespace, database_url: str) -> None:
    forge = Forge(args.delay)
    without: list[float] = []
    with_forge: list[float] = []
    rounds: list[float] = []
    cpu_without = cpu_with = 0.0  # this process's CPU seconds while the builds ran
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
            outbox_poll_seconds=0.05,
            sender=args.sender,
        )
        app = create_app(settings)
        with TestClient(app) as client:
            services = app.state.services
            portal: Any = client.portal
            portal.call(services.admin.bootstrap)
            trigger = _setup(client)
            began = time.perf_counter()
            for n in range(args.rounds):
                while forge.count() < 4 * per_round * n:  # the sender idle again
                    time.sleep(0.05)
                portal.call(services.outbox.unset_credential, ACCOUNT, "github")
                first = 2 * n * per_round
                cpu = time.process_time()
                plain = _finish_all(client, services, trigger, per_round, first)
                cpu_without += time.process_time() - cpu
                portal.call(
                    services.outbox.set_credential, ACCOUNT, "github", "bench-token", forge.url
                )
                cpu = time.process_time()
                forged = _finish_all(client, services, trigger, per_round, first + per_round)
                cpu_with += time.process_time() - cpu
                without += plain
                with_forge += forged
                rounds.append(round(percentile(forged, 99) / percentile(plain, 99), 3))
            expected = 4 * per_round * args.rounds
            while forge.count() < expected and time.perf_counter() - began < 900:
                time.sleep(0.1)
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
        "sender": args.sender,
        "builds": per_round * args.rounds,
        "rounds": args.rounds,
        "forge_delay_ms": args.delay * 1000,
        "finish_p50_ms_without_forge": percentile(without, 50),
        "finish_p99_ms_without_forge": percentile(without, 99),
        "finish_p50_ms_with_forge": percentile(with_forge, 50),
        "finish_p99_ms_with_forge": percentile(with_forge, 99),
        "p99_ratio": round(percentile(with_forge, 99) / percentile(without, 99), 3),
        "p99_ratio_per_round": rounds,
        # CPU of buildsd's process (queueing the builds over HTTP, running them, and with a
        # forge the sender beside them) per build, both phases.
        "process_cpu_ms_per_build_without_forge": round(cpu_without * 1000 / len(without), 2),
        "process_cpu_ms_per_build_with_forge": round(cpu_with * 1000 / len(with_forge), 2),
        "updates_expected": expected,
        "updates_received": len(seen),
        "builds_in_order_exactly_once": sum(v == order for v in by_build.values()),
        "seconds_from_first_build_to_all_delivered": round(drained, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
