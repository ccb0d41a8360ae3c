"""`python -m bench.dashboard` (`make bench-dashboard`): the dashboard's two bars.

1. SSE watchers: W watchers (1, then 100) of one running build that writes 1,000 lines/s. Bar:
   every watcher receives every line, p99 line delay (receipt − the line's timestamp) ≤ 250 ms,
   server CPU with 100 watchers ≤ 10 × with one.
2. The dashboard's build-list page (/a/{account}/workers/{tag}) at 100,000 builds: p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from bench.builds import Setup, git_url_template, make_git_repo, percentile, seed_builds
from bench.client import BUILDS, Client
from bench.servers import ACCOUNT_ID, HOST, TOKEN, Server, running, scratch

TAG_WATCH = "c0ffee00c0ffee00c0ffee00c0ffee10"
TAG_PAGE = "c0ffee00c0ffee00c0ffee00c0ffee11"
OUT = Path(__file__).resolve().parent / "out" / "dashboard.json"

# Paced: line i is printed at start + i ms, whatever the loop's own cost.
WRITER = (
    "python3 -c 'import sys,time\n"
    "t=time.time()\n"
    "for i in range({n}):\n"
    "    d=t+i/1000-time.time()\n"
    "    d>0 and time.sleep(d)\n"
    '    print("w",i,flush=True)\n\''
)


async def watch(port: int, build_uuid: str, delays: list[float], counts: list[int], i: int) -> None:
    """One watcher: a raw HTTP/1.1 stream, chunked encoding parsed, each line's delay noted."""
    reader, writer = await asyncio.open_connection(HOST, port)
    path = f"{BUILDS}/builds/{build_uuid}/logs/stream"
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0], head
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            break
        chunk = await reader.readexactly(size + 2)
        now = time.time() * 1000
        for event in chunk.split(b"\n\n"):
            if b"event: line" in event:
                start = event.index(b"data: [") + 7
                ts = int(event[start : event.index(b",", start)])
                delays.append(now - ts)
                counts[i] += 1
            elif b"event: end" in event:
                writer.close()
                return
    writer.close()


def watchers_run(watchers: int, lines: int) -> dict[str, Any]:
    with scratch("dash-watch") as workdir:
        make_git_repo(workdir)
        env = {"BUILDSD_GIT_URL_GITHUB": git_url_template(workdir)}
        with running("buildsd-watch", "buildsd", runner_slots=1, env=env, workdir=workdir) as srv:
            with Client(srv) as client:
                setup = Setup(client)
                trigger = setup.trigger(TAG_WATCH, WRITER.format(n=lines))
                build = setup.build(trigger)
                while client.result("GET", f"/builds/{build['build_uuid']}")["status"] == "queued":
                    time.sleep(0.01)
            delays: list[float] = []
            counts = [0] * watchers

            async def all_watchers() -> None:
                await asyncio.gather(
                    *(
                        watch(srv.port, build["build_uuid"], delays, counts, i)
                        for i in range(watchers)
                    )
                )

            cpu = srv.cpu_seconds()
            wall = time.monotonic()
            asyncio.run(all_watchers())
            cpu = srv.cpu_seconds() - cpu
            wall = time.monotonic() - wall
            with Client(srv) as client:
                stored = 0
                cursor = ""
                while True:
                    page = client.result(
                        "GET",
                        f"/builds/{build['build_uuid']}/logs"
                        + (f"?cursor={cursor}" if cursor else ""),
                    )
                    stored += len(page["lines"])
                    cursor = page["cursor"]
                    if not page["truncated"]:
                        break
    return {
        "watchers": watchers,
        "lines_stored": stored,
        "every_watcher_every_line": all(c == stored for c in counts),
        "min_lines_received": min(counts),
        "p50_delay_ms": round(percentile(delays, 50), 1),
        "p99_delay_ms": round(percentile(delays, 99), 1),
        "server_cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
    }


def page_run(builds: int, requests: int) -> dict[str, Any]:
    with scratch("dash-page") as workdir:
        with (
            running("buildsd-page", "buildsd", runner_slots=0, workdir=workdir) as srv,
            Client(srv) as client,
        ):
            setup = Setup(client)
            setup.build(setup.trigger(TAG_PAGE))
        seeded = seed_builds(workdir / "data" / "buildsd.sqlite3", TAG_PAGE, builds)
        with running("buildsd-page", "buildsd", runner_slots=0, workdir=workdir) as srv:
            timings = _page_timings(srv, requests)
    return {
        "builds": builds,
        "seed_s": round(seeded, 1),
        "requests": requests,
        "p50_ms": round(percentile(timings, 50), 2),
        "p99_ms": round(percentile(timings, 99), 2),
    }


def _page_timings(srv: Server, requests: int) -> list[float]:
    with httpx.Client(base_url=srv.base_url, timeout=30) as web:
        sign_in = web.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', sign_in.text)
        assert csrf, sign_in.text
        web.post("/sign-in", data={"token": TOKEN, "csrf": csrf.group(1)})
        path = f"/a/{ACCOUNT_ID}/workers/{TAG_PAGE}"
        for _ in range(20):  # warm-up
            assert web.get(path).status_code == 200
        timings = []
        for n in range(requests):
            started = time.perf_counter()
            page = web.get(path + (f"?page={n % 40 + 1}"))
            timings.append((time.perf_counter() - started) * 1000)
            assert page.status_code == 200 and "success" in page.text
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument(
        "--lines", type=int, default=10_000, help="lines the build writes (1,000/s)"
    )
    parser.add_argument("--builds", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    results: dict[str, Any] = {"watchers": [], "page": None}
    for watchers in (1, 100):
        print(f"SSE: {watchers} watcher(s), {args.lines} lines at 1,000/s …", flush=True)
        results["watchers"].append(watchers_run(watchers, args.lines))
        print(json.dumps(results["watchers"][-1]), flush=True)
    one, many = results["watchers"]
    results["cpu_ratio"] = round(many["server_cpu_s"] / max(one["server_cpu_s"], 0.01), 2)
    print(f"dashboard build list at {args.builds} builds …", flush=True)
    results["page"] = page_run(args.builds, args.requests)
    print(json.dumps(results["page"]), flush=True)
    results["bars"] = {
        "every_watcher_every_line": one["every_watcher_every_line"]
        and many["every_watcher_every_line"],
        "p99_delay_ms<=250": many["p99_delay_ms"] <= 250,
        "cpu_ratio<=10": results["cpu_ratio"] <= 10,
        "page_p99_ms<=50": results["page"]["p99_ms"] <= 50,
    }
    print(json.dumps({"cpu_ratio": results["cpu_ratio"], "bars": results["bars"]}), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(results["bars"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
