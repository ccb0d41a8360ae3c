"""A real `buildsd serve` on SQLite while another process holds the database's write lock (the
docs say `serve`, `worker` and the CLI may share the file): the server keeps answering, a write
waits the lock out without blocking anyone, and past BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS it is
503 with Retry-After in the envelope, never a 500."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from buildsd.db import sqlite_path
from tests.conftest import ACCOUNT, PG_URL, TOKEN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(PG_URL), reason="SQLite's write lock"),
]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATH = f"/client/v4/accounts/{ACCOUNT}/builds/repos/connections"
LOCK_TIMEOUT = 2.0
# Holds the write lock until its stdin closes: another process, as `worker` or the CLI is.
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def body(repo_id: str) -> dict[str, str]:
    return {
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": repo_id,
        "repo_name": "repo",
    }


@contextlib.contextmanager
def locked(database_url: str) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, sqlite_path(database_url)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder  # leaving closes its stdin: it rolls back and exits


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_lock_held_elsewhere_blocks_nobody_and_ends_in_503(
    start_server, database_url: str
) -> None:
    server = start_server(BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS=str(LOCK_TIMEOUT))
    with (
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        assert client.put(PATH, json=body("1")).status_code == 200
        with locked(database_url):
            write = pool.submit(timed, lambda: client.put(PATH, json=body("2")))
            time.sleep(0.2)  # the write is waiting on the lock by now
            health = [timed(lambda: client.get("/healthz")) for _ in range(5)]
            read = timed(lambda: client.get(PATH))
            response, waited = write.result()
        for answer, seconds in [*health, read]:
            assert answer.status_code == 200 and seconds < 0.5, (answer.text, seconds)
        assert read[0].json()["result_info"]["total_count"] == 1
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        envelope = response.json()
        assert envelope["success"] is False and envelope["result"] is None
        assert envelope["errors"][0]["code"] == 10001
        assert "locked by another process" in envelope["errors"][0]["message"]
        assert LOCK_TIMEOUT - 0.3 < waited < LOCK_TIMEOUT + 3, waited
        # The lock is gone: the same write goes through, and the refused one wrote nothing.
        assert client.put(PATH, json=body("2")).status_code == 200
        assert client.get(PATH).json()["result_info"]["total_count"] == 2


def test_a_lock_released_in_time_only_delays_the_write(start_server, database_url: str) -> None:
    server = start_server(BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS=str(LOCK_TIMEOUT))
    with (
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        with locked(database_url) as holder:
            write = pool.submit(timed, lambda: client.put(PATH, json=body("1")))
            time.sleep(0.5)
            assert holder.stdin is not None
            holder.stdin.close()
            response, waited = write.result()
        assert response.status_code == 200, response.text
        assert 0.4 < waited < LOCK_TIMEOUT, waited
        with sqlite3.connect(sqlite_path(database_url)) as other:
            assert other.execute("SELECT count(*) FROM repo_connections").fetchone() == (1,)
