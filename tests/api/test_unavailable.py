"""503 in the envelope when the database cannot take a write, and /readyz saying so: a full
database (SQLite's size limit, a really full disk) and a read-only PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from buildsd.app import create_app
from buildsd.config import Settings
from tests.api.flows import base, connection_body
from tests.api.test_routing import envelope_error
from tests.conftest import PG_URL, World

sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite's own size limit and files")


def put_connections(world: World, first: int, count: int) -> list[Any]:
    """PUT `count` new connections with long names; their answers."""
    answers = []
    for n in range(first, first + count):
        body = connection_body(str(n), repo_name=f"r{n}-" + "x" * 240)
        answers.append(
            world.client.put(base(world) + "/repos/connections", json=body, headers=world.auth)
        )
    return answers


def assert_full(response: Any) -> None:
    assert response.status_code == 503, response.text
    error = envelope_error(response)
    assert error["code"] == 10001 and "database or disk is full" in error["message"]
    assert response.headers["retry-after"] == "30"


def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@sqlite_only
def test_a_full_database_answers_503_and_readyz_fails(world: World) -> None:
    """PRAGMA max_page_count makes SQLite answer "database or disk is full" for real."""

    async def limit(pages: int | None) -> None:
        async with world.services.db.connection() as conn:
            if pages is None:
                pages = (await conn.one("PRAGMA page_count"))["page_count"]  # type: ignore[index]
            await conn.run(f"PRAGMA max_page_count = {pages}")

    world.run(limit(None))
    answers = put_connections(world, 1, 200)
    refused = [r for r in answers if r.status_code != 200]
    assert refused, "no write was refused"
    assert_full(refused[0])
    stored = [r.json()["result"]["repo_id"] for r in answers if r.status_code == 200]
    listed = world.client.get(
        base(world) + "/repos/connections", params={"per_page": 200}, headers=world.auth
    ).json()["result"]
    assert [c["repo_id"] for c in listed] == stored  # a 503 stored nothing
    ready = world.client.get("/readyz")
    assert ready.status_code == 503 and "database or disk is full" in ready.text
    assert world.client.get("/healthz").status_code == 200  # the process is fine
    world.run(limit(1073741823))
    assert world.client.get("/readyz").status_code == 200
    assert all(r.status_code == 200 for r in put_connections(world, 1000, 3))


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        with contextlib.suppress(OSError):
            path.rmdir()


@sqlite_only
def test_a_really_full_disk_answers_503_then_recovers(
    make_world: Callable[..., World], template_db: str, tmp_path: Path
) -> None:
    """SQLite commits to the WAL and grows the database file at its checkpoints (once a
    second). On a full disk a commit may not fit the WAL until the next checkpoint lets it
    start over (a 503 that passes), and once the file must grow, the checkpoints fail: then
    /readyz is 503 and so is every write, until there is room again."""
    with tmpfs(tmp_path / "small", "4m") as disk:
        shutil.copy(template_db, disk / "buildsd.sqlite3")
        world = make_world(database_url=f"sqlite:///{disk}/buildsd.sqlite3")
        assert world.client.get("/readyz").status_code == 200
        stat = os.statvfs(disk)
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 96 * 1024))
        for n in range(1, 3000):
            (answer,) = put_connections(world, n, 1)
            if answer.status_code != 200:
                assert_full(answer)
                if world.client.get("/readyz").status_code == 503:
                    break
            time.sleep(0.005)  # the checkpoints' turn
        else:
            raise AssertionError("the disk never filled")
        assert "cannot grow" in envelope_error(world.client.get("/readyz"))["message"]
        assert_full(put_connections(world, 5000, 1)[0])
        filler.unlink()
        until(lambda: world.client.get("/readyz").status_code == 200)
        assert all(r.status_code == 200 for r in put_connections(world, 6000, 3))


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's read-only transactions")
def test_readyz_fails_when_postgresql_cannot_write(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """As on a hot standby after a failover: reads work, the write probe does not."""
    read_only = database_url + "?options=-c%20default_transaction_read_only%3Don"
    with TestClient(create_app(make_settings(database_url=read_only))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "cannot write (ReadOnlySqlTransaction)" in envelope_error(ready)["message"]


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's disk_full")
def test_readyz_fails_when_postgresqls_disk_is_full(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """A real ENOSPC: the probe's temporary table lives in a tablespace on a full tmpfs."""
    import psycopg

    # Where the server's own user can reach it (pytest's folders are root's alone).
    with tmpfs(Path(tempfile.mkdtemp(prefix="buildsd-full-", dir="/tmp")), "1m") as disk:
        shutil.chown(disk, "postgres", "postgres")
        space = f"buildsd_full_{os.getpid()}"
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"CREATE TABLESPACE {space} LOCATION '{disk}'")
            try:
                full = database_url + f"?options=-c%20temp_tablespaces%3D{space}"
                with TestClient(create_app(make_settings(database_url=full))) as client:
                    assert client.get("/readyz").status_code == 200
                    filler = disk / "filler"
                    stat = os.statvfs(disk)
                    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize))
                    ready = client.get("/readyz")
                    assert ready.status_code == 503, ready.text
                    assert "database or disk is full" in envelope_error(ready)["message"]
                    assert ready.headers["retry-after"] == "30"
                    filler.unlink()
                    assert client.get("/readyz").status_code == 200
            finally:
                admin.execute(f"DROP TABLESPACE IF EXISTS {space}")
