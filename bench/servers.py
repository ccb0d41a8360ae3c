"""Start and stop the servers under test (bare ASGI, buildsd on SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOKEN = "benchtoken0123456789abcdefghijklmnopqrst"
ACCOUNT_ID = "b0e1c2d3a4f5061728394a5b6c7d8e9f"
PG_ADMIN_URL = f"postgresql://postgres@{HOST}:5432/postgres"
STOP_GRACE_S = 10.0

assert len(TOKEN) == 40 and len(ACCOUNT_ID) == 32


class ServerError(RuntimeError):
    """A server did not start or did not answer as it should."""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    workdir: Path
    cleanup: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self, children: bool = False) -> float:
        """User + system CPU time the server process has used so far; with `children`, that of
        its finished (waited-for) children instead, e.g. the git and shell processes of builds."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        first = 13 if children else 11
        return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the server process, in MB (MiB)."""
        values: dict[str, float] = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024  # kB → MiB
        return values


def free_port() -> int:
    """A port the kernel says is free right now (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _spawn(name: str, command: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    log_path = workdir / f"{name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    return Server(name, process, port, log_path, workdir)


def clean_env() -> dict[str, str]:
    """Our environment without any BUILDSD_* setting that would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BUILDSD_")}


@contextlib.contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A temporary directory for one server group (data, logs, git repositories), removed after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"buildsd-bench-{name}-"))
    # mkdtemp makes it 0700; bwrap, run as the build uid, must pass through to a workspace.
    workdir.chmod(0o711)
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def running(
    name: str,
    kind: str,
    database_url: str | None = None,
    *,
    runner_slots: int = 2,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> Iterator[Server]:
    """Start a server (`bare` or `buildsd`), wait until it answers, always stop it after.

    buildsd gets `runner_slots` (BUILDSD_RUNNER_SLOTS: 0 = builds stay queued) and any further
    BUILDSD_* settings in `env`. Its data lives in `workdir`/data: pass a `workdir` to keep the
    data between two starts (it is then the caller's to remove); without one, a temporary
    directory is made and removed.
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(scratch(name))
        server: Server | None = None
        try:
            port = free_port()
            process_env = clean_env()
            if kind == "bare":
                command = [
                    str(BIN / "python"), "-m", "uvicorn", "bench.bare:app",
                    "--app-dir", str(ROOT), "--host", HOST, "--port", str(port),
                    "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                    "--workers", "1",
                ]  # fmt: skip
            else:
                command = [str(BIN / "buildsd"), "serve", "--port", str(port), "--rate-limit", "0"]
                process_env.update(
                    BUILDSD_DATA_DIR=str(workdir / "data"),
                    BUILDSD_BOOTSTRAP_TOKEN=TOKEN,
                    BUILDSD_BOOTSTRAP_ACCOUNT_ID=ACCOUNT_ID,
                    BUILDSD_RATE_LIMIT="0",
                    BUILDSD_RUNNER_SLOTS=str(runner_slots),
                    BUILDSD_HOST=HOST,
                )
                if database_url:
                    process_env["BUILDSD_DATABASE_URL"] = database_url
                process_env.update(env or {})
            server = _spawn(name, command, process_env, workdir, port)
            _wait_ready(server)
            yield server
        finally:
            if server is not None:
                stop(server)


def _wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(
                f"{server.name} exited with {server.process.returncode} before it was ready:\n"
                f"{server.log_tail()}"
            )
        try:
            reply = httpx.get(f"{server.base_url}/readyz", timeout=2.0)
            if reply.status_code == 200:
                return
            last = f"{reply.status_code} {reply.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise ServerError(
        f"{server.name} not ready after {timeout:.0f} s ({last}):\n{server.log_tail()}"
    )


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL if it is still running after STOP_GRACE_S."""
    process = server.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        print(f"  {server.name} ignored SIGTERM for {STOP_GRACE_S:.0f} s: SIGKILL", flush=True)
        process.kill()
        process.wait()


# --- load helpers ---------------------------------------------------------------------------


def connections_path() -> str:
    return f"/client/v4/accounts/{ACCOUNT_ID}/builds/repos/connections"


def upsert_body(n: int) -> dict[str, str]:
    """The body scenario.lua sends for repository n (keep the two in step)."""
    return {
        "provider_account_id": "41612145",
        "provider_account_name": "octo",
        "provider_type": "github",
        "repo_id": str(n),
        "repo_name": f"repo-{n}",
    }


def preload(server: Server, repos: int, concurrency: int = 16) -> float:
    """PUT every repository once (checking each answer is 200); returns the seconds it took.

    Plain HTTP/1.1 keep-alive over asyncio streams: httpx's AsyncClient managed only ~250
    requests/s here with 32 concurrent requests, which made the preload the slowest step.
    """

    async def worker(numbers: Iterator[int]) -> None:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            for n in numbers:
                body = json.dumps(upsert_body(n), separators=(",", ":")).encode()
                head = (
                    f"PUT {connections_path()} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
                    f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                writer.write(head.encode() + body)
                status, reply = await _read_response(reader)
                if status != 200:
                    raise ServerError(f"preload PUT repo {n}: {status} {reply[:300]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    async def main() -> None:
        numbers = iter(range(repos))  # shared: each worker takes the next repository
        await asyncio.gather(*(worker(numbers) for _ in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length (uvicorn sends one)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def probe(
    server: Server,
    path: str,
    *,
    auth: bool,
    expect_count: int | None = None,
    token: str = TOKEN,
) -> None:
    """One GET before loading, so a broken scenario fails loudly rather than measuring 4xx."""
    headers = {"Authorization": f"Bearer {token}"} if auth else {}
    reply = httpx.get(server.base_url + path, headers=headers, timeout=10.0)
    if reply.status_code != 200:
        raise ServerError(f"GET {path}: {reply.status_code} {reply.text[:300]}")
    if expect_count is not None:
        got = len(reply.json()["result"])
        if got != expect_count:
            raise ServerError(f"GET {path}: {got} items, expected {expect_count}")


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_version() -> str | None:
    """The server version if PostgreSQL answers at PG_ADMIN_URL, else None."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except Exception as exc:
        print(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}".strip(), flush=True)
        return None


@contextlib.contextmanager
def postgres_database(prefix: str = "buildsd_bench") -> Iterator[str]:
    """A fresh database <prefix>_<random>, dropped afterwards (even if in use); yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{os.urandom(6).hex()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@{HOST}:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
