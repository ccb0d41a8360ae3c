"""The Workers scripts scenarios' set-up: a 1 MiB upload as wrangler sends it, and Workers for
the scripts list (a second account over the CLI, Workers seeded straight into SQLite)."""

from __future__ import annotations

import atexit
import functools
import json
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from bench.client import Client
from bench.servers import ACCOUNT_ID, BIN, ServerError, clean_env

BUNDLE_BYTES = 1024 * 1024  # the bundled module: 1 MiB
UPLOAD_NAME = "bench-upload"
LIST_SMALL, LIST_LARGE = 10, 10_000  # Workers in the two accounts whose lists are loaded
LIST_PAGE = 10  # per_page of the loaded list page: both pages hold 10 Workers
# undici's FormData (what wrangler sends with) names its boundary like this.
BOUNDARY = "----formdata-undici-081329184705"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
METADATA = {
    "main_module": "index.js",
    "bindings": [],
    "compatibility_date": "2025-01-01",
    "compatibility_flags": [],
    "observability": {"enabled": True},
}


def scripts_path(account_id: str) -> str:
    return f"/client/v4/accounts/{account_id}/workers/scripts"


def list_path(account_id: str) -> str:
    return f"{scripts_path(account_id)}?per_page={LIST_PAGE}"


def module(size: int) -> bytes:
    """An ES module of exactly `size` bytes: a fetch handler and many small functions, the
    shape of a bundle (and no run of one byte that would compress to nothing on the way)."""
    head = b'export default { async fetch(request) { return new Response("hello"); } };\n'
    lines = [head]
    total, n = len(head), 0
    while total < size:
        line = f"export function helper{n}(a, b) {{ return a * {n % 97} + b - {n}; }}\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)[:size]


def form(metadata: dict[str, object], files: dict[str, bytes]) -> bytes:
    """A multipart Worker upload as wrangler sends it (undici's FormData): the metadata as a
    string field, then each module as a file with its module content type."""
    chunks = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'.encode()
        + json.dumps(metadata).encode()
        + b"\r\n"
    ]
    for name, content in files.items():
        chunks.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"'
            "\r\nContent-Type: application/javascript+module\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(chunks)


def upload_bytes() -> int:
    """The size of the 1 MiB upload's whole body."""
    return len(form(METADATA, {"index.js": b""})) + BUNDLE_BYTES


@functools.cache
def bundle_file() -> Path:
    """The 1 MiB upload's body, written once per run for wrk (`@FILE`); removed at exit."""
    body = form(METADATA, {"index.js": module(BUNDLE_BYTES)})
    handle, name = tempfile.mkstemp(prefix="buildsd-bench-bundle-", suffix=".multipart")
    with os.fdopen(handle, "wb") as out:
        out.write(body)
    atexit.register(Path(name).unlink, missing_ok=True)
    return Path(name)


# --- set-up -----------------------------------------------------------------------------------


def cli(data_dir: Path, *argv: str) -> str:
    """`buildsd <argv>` on the server's data directory; its last line of output."""
    env = {**clean_env(), "BUILDSD_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [str(BIN / "buildsd"), *argv], env=env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise ServerError(f"buildsd {' '.join(argv)}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


def second_account(data_dir: Path) -> tuple[str, str]:
    """(account id, Workers Scripts Write token) of a new account, made with the CLI."""
    account = cli(data_dir, "accounts", "create", "--name", "bench-10k")
    token = cli(
        data_dir,
        "tokens", "create", "--account", account, "--permission", "Workers Scripts Write",
        "--owner", "account",
    )  # fmt: skip
    return account, token


def upload_small(client: Client, account_id: str, names: list[str]) -> None:
    """One small upload per name (each a new Worker): its script row is what wrangler makes."""
    body = form(METADATA, {"index.js": module(2048)})
    for name in names:
        status, reply = client.call(
            "PUT", f"{scripts_path(account_id)}/{name}", body, content_type=CONTENT_TYPE
        )
        if status != 200:
            raise ServerError(f"upload {name}: {status} {str(reply)[:300]}")


def seed_workers(database: Path, account_id: str, count: int) -> float:
    """Copy the account's one Worker (uploaded over HTTP, the template) until it has `count`,
    each created one millisecond after the one before; returns the seconds it took.

    The copies come after the template in creation order, so the list's first page is the
    same in both accounts' lists but for the names. The server must be stopped.
    """
    started = time.perf_counter()
    conn = sqlite3.connect(database, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM workers WHERE account_id = ?", (account_id,)).fetchall()
        if len(rows) != 1:
            raise ServerError(f"seeding account {account_id}: {len(rows)} Workers, expected 1")
        template = dict(rows[0])
        made = time.time() + 1
        copies = [
            {
                **template,
                "tag": f"{n:032x}",
                "name": f"seeded-{n:05d}",
                "created_on": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(made + n // 1000))
                + f".{n % 1000:03d}Z",
            }
            for n in range(1, count)
        ]
        names = list(template)
        insert = (
            f"INSERT INTO workers ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + name for name in names)})"
        )
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, copies)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


def check_list(client: Client, account_id: str, count: int) -> None:
    """The loaded page holds LIST_PAGE Workers with their tags and counts all `count`."""
    status, reply = client.call("GET", list_path(account_id))
    if status != 200:
        raise ServerError(f"GET {list_path(account_id)}: {status} {str(reply)[:300]}")
    items, info = reply["result"], reply.get("result_info") or {}
    if len(items) != min(LIST_PAGE, count) or info.get("total_count") != count:
        raise ServerError(
            f"scripts of account {account_id}: {len(items)} items, total_count "
            f"{info.get('total_count')}; expected {min(LIST_PAGE, count)} and {count}"
        )
    if not all(len(item["tag"]) == 32 for item in items):
        raise ServerError(f"scripts of account {account_id}: an item without its tag")


def check_upload(client: Client) -> None:
    """The 1 MiB upload answers 200 with the Worker, before it is loaded."""
    path = f"{scripts_path(ACCOUNT_ID)}/{UPLOAD_NAME}"
    body = bundle_file().read_bytes()
    status, reply = client.call("PUT", path, body, content_type=CONTENT_TYPE)
    if status != 200 or reply["result"]["id"] != UPLOAD_NAME:
        raise ServerError(f"PUT {path}: {status} {str(reply)[:300]}")
