"""Forge updates under load (issue 16): 1,000 builds finishing while the forge answers in
200 ms. Bar: finish-to-stopped p99 within 10 % of the same builds with no forge, every update
delivered once, in order per build.

    .venv/bin/python -m bench.forges [--builds 1000] [--delay 0.2] [--database-url URL]

In-process: the builds go through the runner's own service calls (claim, start_running,
finish), so "finish-to-stopped" is the time `Runs.finish` takes to commit the stop, the
transaction the outbox row joins. The forge is a threaded local HTTP server.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from buildsd import migrations
from buildsd.app import create_app
from buildsd.config import load_settings

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "bench-forges-token-0123456789abcdefghij"
BASE = f"/client/v4/accounts/{ACCOUNT}/builds"


class Forge:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []  # (commit, description) in arrival order
        forge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                time.sleep(forge.delay)
                with forge.lock:
                    forge.seen.append((self.path.rsplit("/", 1)[-1], body["description"]))
                self.send_response(201)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    forge = Forge(args.delay)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
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
        )
        app = create_app(settings)
        with TestClient(app) as client:
            services = app.state.services
            client.portal.call(services.admin.bootstrap)  # type: ignore[union-attr]
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
            trigger = _ok(
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
            without = _finish_all(client, services, trigger, args.builds, 0)
            client.portal.call(  # type: ignore[union-attr]
                services.outbox.set_credential, ACCOUNT, "github", "bench-token", forge.url
            )
            began = time.perf_counter()
            with_forge = _finish_all(client, services, trigger, args.builds, args.builds)
            expected = 4 * args.builds
            while len(forge.seen) < expected and time.perf_counter() - began < 600:
                time.sleep(0.1)
            drained = time.perf_counter() - began
            time.sleep(1)  # anything sent twice would arrive now
    by_build: dict[str, list[str]] = {}
    for commit, description in forge.seen:
        by_build.setdefault(commit, []).append(description)
    order = ["Build queued", "Build in progress", "Build in progress", "Build succeeded"]
    result = {
        "builds": args.builds,
        "forge_delay_ms": args.delay * 1000,
        "finish_p50_ms_without_forge": percentile(without, 50),
        "finish_p99_ms_without_forge": percentile(without, 99),
        "finish_p50_ms_with_forge": percentile(with_forge, 50),
        "finish_p99_ms_with_forge": percentile(with_forge, 99),
        "p99_ratio": round(percentile(with_forge, 99) / percentile(without, 99), 3),
        "updates_expected": expected,
        "updates_received": len(forge.seen),
        "builds_in_order_exactly_once": sum(v == order for v in by_build.values()),
        "seconds_to_deliver_all": round(drained, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
