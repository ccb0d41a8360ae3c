"""The emulator's bars (issue 14): `buildsd emulate` to its JSON line, POST /_buildsd/reset with
1,000 rows, POST /_buildsd/accounts, and a simulated build from POST to stopped (immediate).
Beside them, for reference in the same run: the start-up to the first answered request, and a
bare request to the same server (GET /healthz, no database) and one build's GET.

    .venv/bin/python -m bench.emulator [--database-url postgresql://…] [--rounds 200]

Sequential calls on one keep-alive connection, as a test suite makes them; latencies are the
client's (request sent → answer read).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

STARTUP_S = 1.0
RESET_P99_MS = 20.0
ACCOUNT_P99_MS = 10.0
BUILD_P99_MS = 10.0
ROWS = 1_000
TAG = "dd7160bb9cef458093557736f4b9e75b"


def _start(
    database_url: str | None,
) -> tuple[subprocess.Popen[str], dict[str, str], float, float]:
    """The emulator, its line, the seconds to the line and to its first answer."""
    argv = [sys.executable, "-m", "buildsd", "emulate"]
    if database_url:
        argv[3:3] = ["--database-url", database_url]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = json.loads(process.stdout.readline())  # type: ignore[union-attr]
    to_line = time.perf_counter() - started
    auth = {"Authorization": f"Bearer {line['token']}"}
    _ok(httpx.get(line["url"] + "/user/tokens/verify", headers=auth, timeout=30))
    return process, line, to_line, time.perf_counter() - started


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(15)
    process.stdout.close()  # type: ignore[union-attr]


def _ok(response: httpx.Response) -> Any:
    body = response.json()
    assert body["success"], body
    return body["result"]


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def _timed(
    rounds: int, call: Callable[[], Any], before: Callable[[], Any] | None = None
) -> list[float]:
    samples = []
    for _ in range(rounds):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def _trigger(client: httpx.Client, account: str) -> str:
    base = f"/accounts/{account}/builds"
    conn = _ok(
        client.put(
            base + "/repos/connections",
            json={
                "provider_account_id": "1",
                "provider_account_name": "octo",
                "provider_type": "github",
                "repo_id": "2",
                "repo_name": "app",
            },
        )
    )
    token = _ok(
        client.post(
            base + "/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": "s" * 40,
                "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b",
            },
        )
    )
    made = _ok(
        client.post(
            base + "/triggers",
            json={
                "external_script_id": TAG,
                "repo_connection_uuid": conn["repo_connection_uuid"],
                "build_token_uuid": token["build_token_uuid"],
                "trigger_name": "main",
                "branch_includes": ["main"],
                "build_command": "npm run build",
                "deploy_command": "npx wrangler deploy",
            },
        )
    )
    return str(made["trigger_uuid"])


def _build_to_stopped(client: httpx.Client, account: str, trigger: str) -> None:
    base = f"/accounts/{account}/builds"
    build = _ok(client.post(f"{base}/triggers/{trigger}/builds", json={"branch": "main"}))
    url = f"{base}/builds/{build['build_uuid']}"
    while _ok(client.get(url))["status"] != "stopped":
        pass


def measure(database_url: str | None, rounds: int) -> dict[str, Any]:
    starts, answers = [], []
    for _ in range(3):
        process, line, took, answered = _start(database_url)
        starts.append(took)
        answers.append(answered)
        _stop(process)
    process, line, _, _ = _start(database_url)
    figures: dict[str, Any] = {
        "startup_s": [round(s, 3) for s in starts],
        "first_answer_s": [round(s, 3) for s in answers],
    }
    try:
        auth = {"Authorization": f"Bearer {line['token']}"}
        control = httpx.Client(base_url=line["control_url"], timeout=30)
        client = httpx.Client(base_url=line["url"], headers=auth, timeout=30)
        account = line["account_id"]
        figures["accounts"] = _percentiles(
            _timed(rounds, lambda: _ok(control.post("/accounts", json={})))
        )
        _ok(control.post("/reset"))
        trigger = _trigger(client, account)
        figures["build_post_to_stopped"] = _percentiles(
            _timed(rounds, lambda: _build_to_stopped(client, account, trigger))
        )
        root = line["url"].removesuffix("/client/v4")
        figures["bare_healthz"] = _percentiles(
            _timed(rounds, lambda: client.get(root + "/healthz").raise_for_status())
        )
        made = _ok(
            client.post(
                f"/accounts/{account}/builds/triggers/{trigger}/builds", json={"branch": "main"}
            )
        )
        one = f"/accounts/{account}/builds/builds/{made['build_uuid']}"
        figures["build_get"] = _percentiles(_timed(rounds, lambda: _ok(client.get(one))))
        # 1,000 rows and a little more: builds (each a build, 9 log lines, 5 events), a trigger.
        _ok(control.post("/reset"))
        trigger = _trigger(client, account)
        while (saved := _ok(control.post("/snapshots/bench")))["rows"] < ROWS:
            _build_to_stopped(client, account, trigger)
        figures["reset_rows"] = saved["rows"]
        figures["reset"] = _percentiles(
            _timed(
                max(50, rounds // 4),
                lambda: _ok(control.post("/reset")),
                before=lambda: _ok(control.post("/snapshots/bench/restore")),
            )
        )
        control.close()
        client.close()
    finally:
        _stop(process)
    return figures


def verdicts(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    def verdict(value: float, bar: float) -> str:
        return "PASS" if value <= bar else "FAIL"

    start = max(f["startup_s"])
    return [
        (
            f"`buildsd emulate` to its JSON line ≤ {STARTUP_S:.0f} s",
            f"{start:.2f} s (worst of 3)",
            verdict(start, STARTUP_S),
        ),
        (
            f"reset p99 ≤ {RESET_P99_MS:.0f} ms ({f['reset_rows']:,} rows)",
            f"{f['reset']['p99_ms']:.1f} ms",
            verdict(f["reset"]["p99_ms"], RESET_P99_MS),
        ),
        (
            f"new isolated account p99 ≤ {ACCOUNT_P99_MS:.0f} ms",
            f"{f['accounts']['p99_ms']:.1f} ms",
            verdict(f["accounts"]["p99_ms"], ACCOUNT_P99_MS),
        ),
        (
            f"simulated build POST → stopped p99 ≤ {BUILD_P99_MS:.0f} ms",
            f"{f['build_post_to_stopped']['p99_ms']:.1f} ms",
            verdict(f["build_post_to_stopped"]["p99_ms"], BUILD_P99_MS),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator", description=__doc__)
    parser.add_argument("--database-url", help="PostgreSQL (default: the emulator's SQLite)")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    figures = measure(args.database_url, args.rounds)
    print(json.dumps(figures, indent=2))
    for criterion, value, verdict in verdicts(figures):
        print(f"{criterion:<56} {value:>22}  {verdict}")
    for name, label in (("bare_healthz", "bare GET /healthz"), ("build_get", "GET one build")):
        print(
            f"{'reference: ' + label + ' p50 / p99':<56} "
            f"{figures[name]['p50_ms']:>9.2f} / {figures[name]['p99_ms']:.2f} ms"
        )
    print(
        f"{'reference: start-up to the first answer (worst of 3)':<56} "
        f"{max(figures['first_answer_s']):>20.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
