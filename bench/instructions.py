"""`make bench-instructions`: CPU instructions per request, counted by valgrind, with buildsd's
app called in-process; writes docs/benchmarks-instructions.md.

Why: on a shared VM, req/s and CPU time per request move by tens of percent between two runs
of the same code (the host changes under the VM), so a 5 % improvement cannot be seen. The
number of instructions a request executes does not move: it is the measure to compare two
versions of the code with. It leaves out what is not buildsd's (uvicorn, the sockets, the
kernel) and weighs instructions, not their cache misses; `make bench` measures the rest.

Each scenario runs twice under callgrind, with the same set-up and 200 then 600 requests; the
difference of the two counts, divided by 400, is one request's instructions (start-up and
set-up cancel out). Requests are sent 16 at a time, as a loaded server sees them, so group
commit and the audit log's batches behave as under load. Logging is set up as `buildsd serve`
sets it up (JSON lines at level info), written to /dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "benchmarks-instructions.md"
FEWER, MORE = 200, 600
CONCURRENCY = 16
LIST_BUILDS = 50  # one full page

# scenario → (method, path below the account's /builds, body)
_UPSERT = (
    "PUT",
    "/repos/connections",
    b'{"provider_type":"github","provider_account_id":"41612145","provider_account_name":'
    b'"octo-org","repo_id":"1","repo_name":"widgets"}',
)
SCENARIOS: dict[str, tuple[str, str, bytes]] = {
    "upsert": _UPSERT,
    # The same upsert on a server with a second account: the grant check reads the grants.
    "upsert-granted": _UPSERT,
    "build-create": ("POST", "/triggers/{trigger_uuid}/builds", b'{"branch":"main"}'),
    "build-list": ("GET", "/workers/{tag}/builds?per_page=50", b""),
    # The scripts list page (10 Workers to a page) of an account with 10 and with 10,000.
    "script-list-10": ("GET", "{scripts_list}", b""),
    "script-list-10k": ("GET", "{scripts_list}", b""),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help="default: all")
    parser.add_argument(
        "--child", nargs=2, metavar=("SCENARIO", "REQUESTS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--report", type=Path, default=REPORT, help="Markdown page to write")
    parser.add_argument(
        "--against", metavar="REV", help="also count with src/ as it is at this git revision"
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown {unknown}; choose from {', '.join(SCENARIOS)}")
    return args


# --- the child: set up, then send the requests (what valgrind counts) ---------------------------


class _InProcessClient:
    """bench.builds.Setup's client, over Starlette's TestClient (set-up only: not counted)."""

    def __init__(self, client: Any, base: str, token: str) -> None:
        self.client, self.base = client, base
        self.headers = {"Authorization": f"Bearer {token}"}

    def result(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.client.request(method, self.base + path, json=body, headers=self.headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()["result"]


async def _send(app: Any, method: str, path: str, body: bytes, token: str, count: int) -> None:
    """`count` requests straight to the ASGI app, CONCURRENCY at a time; each must answer 200."""
    path, _, query = path.partition("?")
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def one() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8700), "state": {},
        }  # fmt: skip
        started: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])

        await app(scope, receive, send)
        if started != [200]:
            raise RuntimeError(f"{method} {path} answered {started}")

    async def worker(requests: int) -> None:
        for _ in range(requests):
            await one()

    share, rest = divmod(count, CONCURRENCY)
    await asyncio.gather(*(worker(share + (i < rest)) for i in range(CONCURRENCY)))


def child(scenario: str, requests: int) -> None:
    from starlette.testclient import TestClient

    from bench import builds, scripts, servers
    from bench.client import BUILDS
    from buildsd import logs, migrations
    from buildsd.app import build_services, create_app
    from buildsd.config import load_settings

    with tempfile.TemporaryDirectory(prefix="buildsd-instructions-") as data:
        settings = load_settings(
            env={},
            data_dir=data,
            bootstrap_token=servers.TOKEN,
            bootstrap_account_id=servers.ACCOUNT_ID,
            rate_limit=0,
            runner_slots=0,
        )
        # --against a revision from before 475b778 / 9088a4a: configure returned nothing (its
        # writer was the module's `access_log`) and bootstrap was the identity service's.
        access_log = logs.configure("info", "json") or logs.access_log  # type: ignore[attr-defined,func-returns-value]
        access_log.stream = open(os.devnull, "wb")  # noqa: SIM115 - the process's life
        migrations.upgrade(settings.resolved_database_url)
        if hasattr(logs, "access_log"):
            app = create_app(settings)
        else:
            app = create_app(settings, build_services(settings, access_log))
        with TestClient(app) as client:
            services = app.state.services
            bootstrap = getattr(services, "admin", services.identity).bootstrap
            client.portal.call(bootstrap)  # type: ignore[union-attr]
            trigger_uuid = ""
            if scenario.startswith("script-list"):  # the account's only Workers
                _workers(client, settings.resolved_database_url, scenario == "script-list-10k")
            else:
                setup = builds.Setup(_InProcessClient(client, BUILDS, servers.TOKEN))  # type: ignore[arg-type]
                trigger_uuid = setup.trigger(builds.TAG_CREATE)
            if scenario == "upsert-granted":  # a tenant beside the bench's account, granted
                services = app.state.services  # type: ignore[attr-defined]
                client.portal.call(services.admin.create_account, "tenant")  # type: ignore[union-attr]
                client.portal.call(  # type: ignore[union-attr]
                    services.grants.add, servers.ACCOUNT_ID, "github", "41612145", "octo-org"
                )
            if scenario == "build-list":
                for _ in range(LIST_BUILDS):
                    setup.build(trigger_uuid)
            method, path, body = SCENARIOS[scenario]
            path = path.format(
                trigger_uuid=trigger_uuid,
                tag=builds.TAG_CREATE,
                scripts_list=scripts.list_path(servers.ACCOUNT_ID),
            )
            if not path.startswith("/client/"):
                path = BUILDS + path
            for count in (50, requests):  # 50 to warm the caches first
                client.portal.call(_send, app, method, path, body, servers.TOKEN, count)  # type: ignore[union-attr]


def _workers(client: Any, database_url: str, large: bool) -> None:
    """10 Workers uploaded over HTTP; or 1, copied into 10,000 straight into SQLite."""
    from bench import scripts, servers

    path = scripts.scripts_path(servers.ACCOUNT_ID)
    body = scripts.form(scripts.METADATA, {"index.js": scripts.module(2048)})
    headers = {"Authorization": f"Bearer {servers.TOKEN}", "Content-Type": scripts.CONTENT_TYPE}
    for n in range(1 if large else scripts.LIST_SMALL):
        answer = client.put(f"{path}/listed-{n:02d}", content=body, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"upload: {answer.status_code} {answer.text}")
    if large:
        database = Path(database_url.removeprefix("sqlite:///"))
        scripts.seed_workers(database, servers.ACCOUNT_ID, scripts.LIST_LARGE)


# --- the parent: run each scenario twice under valgrind -----------------------------------------


def counted(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m ARGV…` started under callgrind (two at once use both cores); `collected`
    reads its count."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
        *argv,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def collected(process: subprocess.Popen[str]) -> int:
    _, stderr = process.communicate()
    found = re.search(r"Collected : (\d+)", stderr)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({process.returncode}):\n{stderr[-2000:]}")
    return int(found.group(1))


def _instructions(scenario: str, requests: int, src: Path | None) -> subprocess.Popen[str]:
    # With `src`, that revision's package comes first on the path.
    env = None if src is None else {"PYTHONPATH": str(src)}
    return counted(["bench.instructions", "--child", scenario, str(requests)], env)


def measure(scenario: str, src: Path | None = None) -> int:
    """One request's instructions: two runs at once (this machine has two cores)."""
    fewer, more = _instructions(scenario, FEWER, src), _instructions(scenario, MORE, src)
    return (collected(more) - collected(fewer)) // (MORE - FEWER)


def export_src(revision: str, into: Path) -> Path:
    """src/ as it is at `revision`, written below `into` (git archive: no checkout changes)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src"], cwd=ROOT, capture_output=True
    )
    if archive.returncode != 0:
        raise SystemExit(f"--against {revision}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def render(results: dict[str, int], against: tuple[str, dict[str, int]] | None) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if against is None:
        head = "| scenario | instructions per request |\n|---|---:|\n"
        rows = [f"| {name} | {count:,} |" for name, count in results.items()]
    else:
        revision, before = against
        head = (
            f"| scenario | instructions per request | at {revision} | change |\n"
            "|---|---:|---:|---:|\n"
        )
        rows = [
            f"| {name} | {count:,} | {before[name]:,} | {count / before[name] - 1:+.1%} |"
            for name, count in results.items()
        ]
    return (
        "# Instructions per request\n\n"
        "<!-- Generated by `make bench-instructions` (bench/instructions.py). -->\n\n"
        f"Measured {when}, buildsd at commit {commit} (plus any uncommitted changes), Python "
        f"{sys.version.split()[0]}.\n\n" + head + "\n".join(rows) + "\n\n"
        "**upsert** is the repository-connection upsert of an existing repository, "
        "**upsert-granted** the same with a second account on the server (the grant check "
        "reads the account's grants), "
        "**build-create** `POST …/triggers/{uuid}/builds`, **build-list** a page of 50 builds "
        "with their trigger, **script-list-10** / **script-list-10k** `GET …/workers/scripts"
        "?per_page=10` of an account with 10 / 10,000 Workers; SQLite, rate limiting off, as in "
        "`make bench`.\n\n"
        "How they are counted (bench/instructions.py): "
        + " ".join((__doc__ or "").split("\n\n", 1)[1].split())
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install valgrind", file=sys.stderr)
        return 2
    results = _count(args.scenarios, None, "")
    against = None
    if args.against:
        with tempfile.TemporaryDirectory(prefix="buildsd-against-") as folder:
            src = export_src(args.against, Path(folder))
            against = (args.against, _count(args.scenarios, src, f" at {args.against}"))
    args.report.write_text(render(results, against))
    report = args.report.resolve()
    print(f"wrote {report.relative_to(ROOT) if report.is_relative_to(ROOT) else report}")
    return 0


def _count(scenarios: list[str], src: Path | None, label: str) -> dict[str, int]:
    results = {}
    for scenario in scenarios:
        print(f"{scenario}{label}: counting ({FEWER} and {MORE} requests under valgrind)")
        results[scenario] = measure(scenario, src)
        print(f"{scenario}{label}: {results[scenario]:,} instructions per request", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
