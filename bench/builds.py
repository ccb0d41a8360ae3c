"""The builds scenarios' set-up (over HTTP, plus seeding SQLite) and the runner measurements."""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench.client import Client
from bench.servers import ACCOUNT_ID, Server, ServerError
from buildsd.store.builds import json_select

# Worker tags (32 hex): one per scenario, so no scenario's builds show up in another's list.
TAG_CREATE = "c0ffee00c0ffee00c0ffee00c0ffee01"
TAG_LIST = {1_000: "c0ffee00c0ffee00c0ffee00c0ffee02", 100_000: "c0ffee00c0ffee00c0ffee00c0ffee03"}
TAG_QUEUE = "c0ffee00c0ffee00c0ffee00c0ffee04"
TAG_LOGS = "c0ffee00c0ffee00c0ffee00c0ffee05"
TAG_WEBHOOKS = "c0ffee00c0ffee00c0ffee00c0ffee06"
GIT_OWNER, GIT_REPO = "octo", "bench"
LIST_PAGE = 50
LOG_LINES = 100_000
QUEUE_BUILDS = 100
QUEUE_WARMUP = 3  # builds run first and not counted (first clone, first cache directory)
POLL_SECONDS = 0.002


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the second largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def git_url_template(workdir: Path) -> str:
    """BUILDSD_GIT_URL_GITHUB for a server whose repositories are made by make_git_repo."""
    return f"file://{workdir}/git/{{provider_account_name}}/{{repo_name}}.git"


def make_git_repo(workdir: Path) -> Path:
    """A bare repository workdir/git/octo/bench.git with one commit on main."""
    bare = workdir / "git" / GIT_OWNER / f"{GIT_REPO}.git"
    clone = workdir / "git-work"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }

    def git(*argv: str) -> None:
        done = subprocess.run(["git", *argv], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerError(f"git {' '.join(argv)}: {done.stderr.strip()}")

    bare.parent.mkdir(parents=True)
    git("init", "--quiet", "--bare", "-b", "main", str(bare))
    git("clone", "--quiet", str(bare), str(clone))
    (clone / "README.md").write_text("A repository for `make bench`.\n")
    git("-C", str(clone), "add", "README.md")
    git("-C", str(clone), "commit", "--quiet", "-m", "bench")
    git("-C", str(clone), "push", "--quiet", "origin", "main")
    return bare


# --- set-up over HTTP -------------------------------------------------------------------------


class Setup:
    """A repository connection and a build token; triggers made on them, one per Worker."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.connection = client.result(
            "PUT",
            "/repos/connections",
            {
                "provider_account_id": "41612145",
                "provider_account_name": GIT_OWNER,
                "provider_type": "github",
                "repo_id": "1",
                "repo_name": GIT_REPO,
            },
        )["repo_connection_uuid"]
        self.token = client.result(
            "POST",
            "/tokens",
            {"build_token_name": "t", "build_token_secret": "x" * 40, "cloudflare_token_id": "y"},
        )["build_token_uuid"]

    def trigger(self, tag: str, build_command: str = "") -> str:
        return str(
            self.client.result(
                "POST",
                "/triggers",
                {
                    "external_script_id": tag,
                    "repo_connection_uuid": self.connection,
                    "build_token_uuid": self.token,
                    "trigger_name": "t",
                    "branch_includes": ["main"],
                    "build_command": build_command,
                    "deploy_command": "true",
                },
            )["trigger_uuid"]
        )

    def build(self, trigger_uuid: str) -> dict[str, Any]:
        path = f"/triggers/{trigger_uuid}/builds"
        return dict(self.client.result("POST", path, {"branch": "main"}))


def list_path(tag: str) -> str:
    return f"/workers/{tag}/builds?per_page={LIST_PAGE}"


# --- seeding builds straight into the SQLite file -----------------------------------------------


@functools.lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def _wire_time(ms: int) -> str:
    """buildsd's time format (2026-01-02T03:04:05.678Z); rows of one second share its prefix."""
    return f"{_second(ms // 1000)}.{ms % 1000:03d}Z"


def seed_builds(database: Path, tag: str, count: int) -> float:
    """Replace the Worker's one build (made over HTTP, the template) by `count` finished builds,
    one a second going back from now, and set its counter; returns the seconds it took.

    Every column but the ids, times and outcome is copied from the template, so the rows are
    exactly what buildsd writes. The server must be stopped.
    """
    started = time.perf_counter()
    conn = sqlite3.connect(database, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        where = "WHERE account_id = ? AND external_script_id = ?"
        templates = conn.execute(f"SELECT * FROM builds {where}", (ACCOUNT_ID, tag)).fetchall()
        if len(templates) != 1:
            raise ServerError(f"seeding Worker {tag}: {len(templates)} builds, expected 1")
        template = dict(templates[0])
        newest = int(time.time() * 1000)
        rows = []
        for n in range(count):
            created = newest - n * 1000
            rows.append(
                {
                    **template,
                    "build_uuid": str(uuid.uuid4()),
                    "status": "stopped",
                    "build_outcome": "success",
                    "created_on": _wire_time(created),
                    "initializing_on": _wire_time(created + 50),
                    "running_on": _wire_time(created + 300),
                    "stopped_on": _wire_time(created + 900),
                    "modified_on": _wire_time(created + 900),
                    "duration_ms": 600,
                    "commit_hash": f"{count - n:040x}",
                }
            )
        names = list(template)
        insert = (
            f"INSERT INTO builds ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + name for name in names)})"
        )
        # In primary-key order with a large cache: random uuids otherwise make SQLite touch
        # a different page of the primary-key index for every row.
        rows.sort(key=lambda row: row["build_uuid"])
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM builds WHERE build_uuid = ?", (template["build_uuid"],))
        conn.executemany(insert, rows)
        # Each row's stored JSON (the template's was copied), as buildsd renders it.
        conn.execute(
            f"UPDATE builds SET build_json = {json_select('sqlite')} {where}", (ACCOUNT_ID, tag)
        )
        updated = conn.execute(
            f"UPDATE worker_build_counts SET build_count = ? {where}", (count, ACCOUNT_ID, tag)
        ).rowcount
        if updated != 1:
            raise ServerError(f"seeding Worker {tag}: no worker_build_counts row")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


def check_list(server: Server, tag: str, count: int) -> None:
    """The list page answers 50 builds, newest first, and counts all `count` (before loading)."""
    with Client(server) as client:
        items, info = client.page(list_path(tag))
    if len(items) != min(LIST_PAGE, count) or info.get("total_count") != count:
        raise ServerError(
            f"list of Worker {tag}: {len(items)} items, total_count {info.get('total_count')}; "
            f"expected {min(LIST_PAGE, count)} and {count}"
        )
    created = [item["created_on"] for item in items]
    if created != sorted(created, reverse=True):
        raise ServerError(f"list of Worker {tag}: not newest first")


# --- the runner: queue latency and log ingestion ------------------------------------------------


def _ms(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def _build_problem(client: Client, build: dict[str, Any]) -> str:
    _, logs = client.call("GET", f"/builds/{build['build_uuid']}/logs")
    lines = [text for _, text in (logs or {}).get("result", {}).get("lines", [])][-5:]
    return f"build {build['build_uuid']} ended {build['build_outcome']}: {' | '.join(lines)}"


def queue_latency(server: Server, trigger_uuid: str, builds: int = QUEUE_BUILDS) -> dict[str, Any]:
    """POST a build, poll it every ~2 ms until running, wait until stopped; `builds` times."""
    to_initializing: list[float] = []
    to_running: list[float] = []
    server_initializing: list[float] = []
    server_running: list[float] = []
    server_clone: list[float] = []  # initializing → running: git clone, git log, bookkeeping
    unseen_running = 0
    problems: list[str] = []
    polls = 0
    polling = 0.0
    with Client(server) as client:
        for n in range(QUEUE_WARMUP + builds):
            path = f"/triggers/{trigger_uuid}/builds"
            build_uuid = client.result("POST", path, {"branch": "main"})["build_uuid"]
            posted = time.perf_counter()
            before = client.requests
            seen: dict[str, float] = {}
            client.wait_build(build_uuid, "running", every=POLL_SECONDS, timeout=60, seen=seen)
            polls += client.requests - before
            polling += time.perf_counter() - posted
            build = client.wait_build(build_uuid, "stopped", every=0.01, timeout=60)
            if n < QUEUE_WARMUP:
                continue
            if build["build_outcome"] != "success":
                problems.append(_build_problem(client, build))
                continue
            # Seeing "stopped" first means the build ran between two polls: it was running by then.
            unseen_running += "running" not in seen
            running = seen.get("running", seen.get("stopped", 0.0))
            initializing = min(t for status, t in seen.items() if status != "queued")
            to_initializing.append((initializing - posted) * 1000)
            to_running.append((running - posted) * 1000)
            created = _ms(build["created_on"])
            server_initializing.append(_ms(build["initializing_on"]) - created)
            server_running.append(_ms(build["running_on"]) - created)
            server_clone.append(_ms(build["running_on"]) - _ms(build["initializing_on"]))
    figures: dict[str, Any] = {
        "builds": builds,
        "warmup": QUEUE_WARMUP,
        "errors": len(problems),
        "problems": problems[:5],
    }
    if to_running:
        figures.update(
            {
                "running_p50_ms": percentile(to_running, 50),
                "running_p99_ms": percentile(to_running, 99),
                "running_max_ms": max(to_running),
                "initializing_p50_ms": percentile(to_initializing, 50),
                "initializing_p99_ms": percentile(to_initializing, 99),
                "server_initializing_p50_ms": percentile(server_initializing, 50),
                "server_initializing_p99_ms": percentile(server_initializing, 99),
                "server_running_p50_ms": percentile(server_running, 50),
                "server_running_p99_ms": percentile(server_running, 99),
                "server_clone_p50_ms": percentile(server_clone, 50),
                "server_clone_p99_ms": percentile(server_clone, 99),
                "running_unseen": unseen_running,
                "poll_interval_ms": round(polling / polls * 1000, 2) if polls else None,
                "samples_running_ms": [round(v, 2) for v in to_running],
            }
        )
    return figures


def log_ingest(server: Server, trigger_uuid: str, lines: int = LOG_LINES) -> dict[str, Any]:
    """Run a build printing `lines` lines; time running → stopped; read every line back."""
    with Client(server) as client:
        posted = time.perf_counter()
        path = f"/triggers/{trigger_uuid}/builds"
        build_uuid = client.result("POST", path, {"branch": "main"})["build_uuid"]
        seen: dict[str, float] = {}
        build = client.wait_build(build_uuid, "stopped", every=0.01, timeout=300, seen=seen)
        figures: dict[str, Any] = {"lines": lines, "build_outcome": build["build_outcome"]}
        problems: list[str] = []
        if build["build_outcome"] != "success":
            problems.append(_build_problem(client, build))
        if build["running_on"] and build["stopped_on"]:
            seconds = (_ms(build["stopped_on"]) - _ms(build["running_on"])) / 1000
            figures["running_to_stopped_s"] = round(seconds, 3)
            figures["lines_per_s"] = round(lines / seconds) if seconds > 0 else None
        figures["observed_post_to_stopped_s"] = round(seen["stopped"] - posted, 3)
        figures.update(read_back(client, build_uuid, lines, problems))
    figures["errors"] = len(problems)
    figures["problems"] = problems[:10]
    return figures


def read_back(client: Client, build_uuid: str, lines: int, problems: list[str]) -> dict[str, Any]:
    """Every page of the build's log (while truncated: follow cursor), checked line by line."""
    texts: list[str] = []
    stamps: list[int] = []
    page_ms: list[float] = []
    cursor = None
    started = time.perf_counter()
    while True:
        query = f"?cursor={cursor}" if cursor else ""
        t0 = time.perf_counter()
        page = client.result("GET", f"/builds/{build_uuid}/logs{query}")
        page_ms.append((time.perf_counter() - t0) * 1000)
        for ts, text in page["lines"]:
            stamps.append(ts)
            texts.append(text)
        if not page["cursor"]:
            problems.append(f"page {len(page_ms)} has no cursor")
            break
        cursor = page["cursor"]
        if not page["truncated"]:
            break
        if len(page_ms) > lines:  # a cursor that never ends
            problems.append("the cursor loop did not end")
            break
    seconds = time.perf_counter() - started
    after_last = client.result("GET", f"/builds/{build_uuid}/logs?cursor={cursor}")
    if after_last["lines"] or after_last["truncated"]:
        problems.append(f"following the last cursor gave {len(after_last['lines'])} lines")
    if stamps != sorted(stamps):
        problems.append("line timestamps go backwards")
    problems += check_lines(texts, lines)
    return {
        "read_pages": len(page_ms),
        "read_lines": len(texts),
        "read_s": round(seconds, 3),
        "read_lines_per_s": round(len(texts) / seconds) if seconds > 0 else None,
        "read_page_p50_ms": round(percentile(page_ms, 50), 2),
        "read_page_p99_ms": round(percentile(page_ms, 99), 2),
        "lost": max(0, lines - len({t for t in texts if t.isdigit()})),
    }


def check_lines(texts: list[str], lines: int) -> list[str]:
    """`seq 1 N` printed 1..N: each exactly once, in order, with nothing between them."""
    problems = []
    header = f"Executing user build command: seq 1 {lines}"
    if header not in texts:
        return [f"no line {header!r}; read {len(texts)} lines"]
    start = texts.index(header) + 1
    body = texts[start : start + lines]
    expected = [str(n) for n in range(1, lines + 1)]
    if body != expected:
        numbers = [t for t in texts if t.isdigit()]
        distinct = set(numbers)
        missing = sum(1 for n in expected if n not in distinct)
        duplicated = len(numbers) - len(distinct)
        first = next(
            (i for i, (a, b) in enumerate(zip(body, expected, strict=False)) if a != b), len(body)
        )
        problems.append(
            f"lines 1..{lines}: {missing} missing, {duplicated} duplicated, first difference at "
            f"line {first + 1} ({body[first] if first < len(body) else 'end'!r})"
        )
    return problems
