"""A soak cluster: its database, a bare git repository, and the buildsd processes sharing them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import postgres_database

from soak.processes import HOST, Proc, free_port, kill_strays

TOKEN = "soaktoken_" + secrets.token_urlsafe(24).replace("-", "x")
ACCOUNT_ID = secrets.token_hex(16)
WEBHOOK_SECRET = secrets.token_hex(24)
PG_ADMIN_URL = f"postgresql://postgres@{HOST}:5432/postgres"
LEASE_SECONDS = 3
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Soak",
    "GIT_AUTHOR_EMAIL": "soak@example.com",
    "GIT_COMMITTER_NAME": "Soak",
    "GIT_COMMITTER_EMAIL": "soak@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


@dataclass
class Cluster:
    backend: str  # postgresql | sqlite
    database_url: str
    workdir: Path
    commit: str  # the sha of main in the bare repository
    procs: list[Proc] = field(default_factory=list)

    def markers(self) -> list[Path]:
        """What each start of a command left: in its trigger's build cache, the one place a
        sandboxed build writes that outlives it (workload.MARKERS)."""
        return sorted(self.workdir.glob("data/cache/*/soak-markers/*"))

    def servers(self) -> list[Proc]:
        return [p for p in self.procs if p.kind == "serve"]

    def live_servers(self) -> list[Proc]:
        return [p for p in self.servers() if p.alive]

    def runner_slots(self) -> int:
        return sum(int(p.env.get("BUILDSD_RUNNER_SLOTS", "0")) for p in self.procs)


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_URL, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def make_repo(root: Path) -> str:
    """octo-org/my-worker.git under root/git with one commit on main; returns its sha."""
    bare = root / "git" / "octo-org" / "my-worker.git"
    work = root / "work"
    bare.parent.mkdir(parents=True)

    env = {**GIT_ENV, "HOME": str(root)}

    def git(*args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("clone", "-q", str(bare), str(work))
    (work / "README.md").write_text("soak\n")
    (work / "src").mkdir()
    (work / "src" / "index.js").write_text("export default {}\n")
    git("checkout", "-q", "-B", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "Initial commit", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def base_env(workdir: Path, database_url: str, secret_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDSD_")}
    env.update(
        BUILDSD_DATABASE_URL=database_url,
        BUILDSD_DATA_DIR=str(workdir / "data"),
        BUILDSD_BOOTSTRAP_TOKEN=TOKEN,
        BUILDSD_BOOTSTRAP_ACCOUNT_ID=ACCOUNT_ID,
        BUILDSD_RATE_LIMIT="0",
        BUILDSD_SECRET_KEY=secret_key,
        BUILDSD_LEASE_SECONDS=str(LEASE_SECONDS),
        BUILDSD_CANCEL_GRACE_SECONDS="2",
        BUILDSD_GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        BUILDSD_GIT_URL_GITHUB=(
            f"file://{workdir}/git/{{provider_account_name}}/{{repo_name}}.git"
        ),
    )
    return env


# name, kind, runner slots: the PostgreSQL run has two API replicas and a separate worker.
LAYOUTS = {
    "postgresql": [("serve-a", "serve", 0), ("serve-b", "serve", 2), ("worker", "worker", 3)],
    "sqlite": [("serve", "serve", 2)],
}


@contextlib.asynccontextmanager
async def cluster(backend: str, keep: bool = False) -> AsyncIterator[Cluster]:
    """Everything a run needs, torn down afterwards whatever happens."""
    workdir = Path(tempfile.mkdtemp(prefix=f"buildsd-soak-{backend}-"))
    # mkdtemp makes it 0700; bwrap, run as the build uid, must pass through to a workspace.
    workdir.chmod(0o711)
    stack = contextlib.ExitStack()
    made: Cluster | None = None
    try:
        if backend == "postgresql":
            database_url = stack.enter_context(postgres_database("buildsd_soak"))
        else:
            database_url = f"sqlite:///{workdir}/data/buildsd.sqlite3"
        secret_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env = base_env(workdir, database_url, secret_key)
        made = Cluster(backend, database_url, workdir, make_repo(workdir))
        for name, kind, slots in LAYOUTS[backend]:
            port = free_port() if kind == "serve" else None
            proc_env = {**env, "BUILDSD_RUNNER_SLOTS": str(slots)}
            if port is not None:
                proc_env["BUILDSD_PORT"] = str(port)
            made.procs.append(Proc(name, kind, proc_env, workdir / f"{name}.log", port))
        first, *others = made.procs  # the first applies migrations and bootstraps alone
        first.spawn()
        await first.wait_ready()
        for proc in others:
            proc.spawn()
        await asyncio.gather(*(proc.wait_ready() for proc in others))
        yield made
    finally:
        try:
            for proc in made.procs if made else []:
                with contextlib.suppress(Exception):  # stop the others whatever happens
                    proc.stop()
            kill_strays(workdir)
        finally:
            stack.close()
            if keep:
                print(f"  kept {workdir}", flush=True)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
