"""Rate limiting (D15): headers on every response, 429 971 with Retry-After past the limit."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from buildsd.db import PostgresDatabase
from buildsd.services.rate_limits import DatabaseWindow, SlidingWindow, Verdict, counter
from tests.conftest import PG_URL, database_named

REDIS_URL = "redis://127.0.0.1:6379/15"

PATH = "/client/v4/accounts/{a}/builds/repos/connections"


def test_headers_and_429(make_world) -> None:
    world = make_world(rate_limit=3)
    path = PATH.format(a=world.account)
    remaining = []
    for _ in range(3):
        response = world.client.get(path, headers=world.auth)
        assert response.status_code == 200
        assert response.headers["ratelimit-policy"] == '"burst";q=3;w=300'
        remaining.append(response.headers["ratelimit"])
    assert remaining[0].startswith('"default";r=2;t=')
    assert remaining[2].startswith('"default";r=0;t=')
    limited = world.client.get(path, headers=world.auth)
    assert limited.status_code == 429
    assert limited.json() == {
        "success": False,
        "errors": [
            {"code": 971, "message": "Please wait and consider throttling your request speed"}
        ],
        "messages": [],
        "result": None,
    }
    assert 1 <= int(limited.headers["retry-after"]) <= 300
    # Per credential: another token still gets through.
    other = world.new_token("Workers CI Read")
    assert world.client.get(path, headers=world.bearer(other)).status_code == 200
    # Errors carry the headers too.
    assert "ratelimit" in world.client.get("/client/v4/nope").headers


def test_off_by_default_in_tests_and_zero_means_off(world) -> None:
    response = world.client.get(PATH.format(a=world.account), headers=world.auth)
    assert "ratelimit" not in response.headers


def _slides(hit: Callable[[float], Awaitable[Verdict]], run: Callable[[Any], Any]) -> None:
    """A limit of 10 in windows of 100 s, whatever holds the counters."""

    async def hits(now: float, times: int) -> list[Verdict]:
        return [await hit(now) for _ in range(times)]

    assert all(v.allowed for v in run(hits(50.0, 10)))
    assert not run(hits(99.0, 1))[0].allowed
    # Halfway through the next bucket half of the previous bucket still counts: 5 left.
    verdicts = run(hits(150.0, 6))
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert verdicts[-1].retry_after >= 1
    assert run(hits(400.0, 1))[0] == Verdict(True, 9, 100, 0)


def test_window_slides() -> None:
    window = SlidingWindow(limit=10, window=100)
    _slides(lambda now: window.hit(b"k", now), asyncio.run)


def test_window_slides_in_postgresql(world) -> None:
    """Without Redis, PostgreSQL holds the counters (D15): the same window, in one statement."""
    db = world.services.db
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves from one process: its counters stay in memory")
    assert isinstance(counter(1200, "", db), DatabaseWindow)
    window = DatabaseWindow(db, limit=10, window=100)
    key = secrets.token_bytes(16)
    _slides(lambda now: window.hit(key, now), world.run)


def test_far_from_the_limit_replicas_count_locally_and_share_in_the_background(world) -> None:
    """No statement a request: the counts go to the database in one statement per sync."""
    db = world.services.db
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves from one process: its counters stay in memory")
    first, second = (DatabaseWindow(db, limit=1000, window=100, sync_seconds=60) for _ in "ab")
    key = secrets.token_bytes(16)

    async def scenario() -> list[int]:
        for _ in range(50):
            assert (await first.hit(key, 10.0)).allowed
        before = await _shared_hits(db, key)
        await first.sync()
        after_first = await _shared_hits(db, key)
        await second.hit(key, 11.0)
        await second.sync()  # the second replica learns the total, its own request included
        remaining = (await second.hit(key, 12.0)).remaining
        await first.close()
        await second.close()
        return [before, after_first, await _shared_hits(db, key), remaining]

    assert world.run(scenario()) == [0, 50, 52, 1000 - 52]


async def _shared_hits(db: Any, key: bytes) -> int:
    async with db.connection() as conn:
        row = await conn.one(
            "SELECT COALESCE(SUM(hits), 0) AS hits FROM rate_limit_buckets "
            "WHERE credential = :credential",
            {"credential": key.hex()},
        )
    return int(row["hits"])


def test_near_the_limit_the_database_decides(world) -> None:
    """Of 60 concurrent requests through two replicas' windows (limit 20, within 10 of it the
    database decides), at most the limit plus what one replica let through unseen pass; once
    the counts are shared, both replicas refuse."""
    db = world.services.db
    if db.dialect != "postgresql":
        pytest.skip("SQLite serves from one process: its counters stay in memory")
    replicas = [DatabaseWindow(db, limit=20, window=100) for _ in range(2)]
    assert replicas[0].headroom == 10
    key = secrets.token_bytes(16)

    async def race() -> tuple[list[Verdict], list[Verdict]]:
        verdicts = await asyncio.gather(*(replicas[n % 2].hit(key, 10.0) for n in range(60)))
        for replica in replicas:
            await replica.sync()
        after = [await replica.hit(key, 11.0) for replica in replicas]
        return list(verdicts), after

    verdicts, after = world.run(race())
    assert 20 <= sum(v.allowed for v in verdicts) <= 20 + 10
    assert all(v.retry_after >= 1 for v in verdicts if not v.allowed)
    assert not any(v.allowed for v in after)


def test_replicas_share_their_counters_through_postgresql(make_world) -> None:
    replicas = [make_world(rate_limit=4) for _ in range(2)]
    if replicas[0].services.db.dialect != "postgresql":
        pytest.skip("SQLite serves from one process: its counters stay in memory")
    _fifth_is_refused(replicas)


def _fifth_is_refused(replicas: list[Any]) -> None:
    """A limit of 4 shared by two replicas, asked in turn.

    The limiter counts before authentication, so a fresh random credential (unknown to both,
    answered 401) keeps this run's counts apart from any earlier run's."""
    headers = {"Authorization": f"Bearer {secrets.token_urlsafe(30)}"}
    answers = [
        replicas[n % 2].client.get(PATH.format(a=replicas[n % 2].account), headers=headers)
        for n in range(5)
    ]
    assert [r.status_code for r in answers] == [401, 401, 401, 401, 429]
    assert answers[4].json()["errors"][0]["code"] == 971
    assert answers[3].headers["ratelimit"].startswith('"default";r=0;t=')


def test_unreachable_database_counters_let_requests_through(caplog) -> None:
    """The database goes away under an open pool (a real PostgreSQL behind a proxy that is cut):
    the request is let through and the driver's error logged, not a bug's."""
    with _scratch_postgres() as url:
        verdicts = asyncio.run(_cut_mid_way(url))
    assert all(v.allowed for v in verdicts)
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, warnings  # the first hit, before the cut, reached the database
    assert "connection" in warnings[0].lower(), warnings  # the driver's word, not a bug's


@contextlib.contextmanager
def _scratch_postgres() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own (the suite's may be SQLite)."""
    import psycopg

    from buildsd import migrations

    admin = PG_URL or "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(admin, connect_timeout=2).close()
    except psycopg.Error:
        pytest.skip("no PostgreSQL to cut away")
    name = f"buildsd_cut_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_named(admin, name)
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _cut_mid_way(url: str) -> list[Verdict]:
    """One hit through a live proxy to PostgreSQL, then the proxy and its sockets are closed."""
    from sqlalchemy.engine import make_url

    target = make_url(url)
    socket_dir = target.query.get("host")  # postgresql:///db?host=/run/postgresql
    streams: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if socket_dir:
            up = await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{target.port or 5432}")
        else:
            up = await asyncio.open_connection(target.host or "127.0.0.1", target.port or 5432)
        streams.extend([writer, up[1]])
        await asyncio.gather(pipe(reader, up[1]), pipe(up[0], writer))

    proxy = await asyncio.start_server(forward, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    proxied = target.set(host="127.0.0.1", port=port, query={}).render_as_string(False)
    db = PostgresDatabase(proxied, pool_size=1)
    await db.open()
    try:
        window = DatabaseWindow(db, limit=1)
        # One key: had the second hit reached the database, the limit of 1 would refuse it.
        key = secrets.token_bytes(8)
        verdicts = [await window.hit(key, 1.0)]
        proxy.close()
        for writer in streams:
            writer.transport.abort()
        await proxy.wait_closed()
        verdicts.append(await window.hit(key, 2.0))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(db.close(), 5)
    return verdicts


def _redis_or_skip() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return REDIS_URL
    except OSError:
        pytest.skip("no Redis at 127.0.0.1:6379")


def test_replicas_share_their_counters_through_redis(make_world) -> None:
    """Two servers (replicas) with one BUILDSD_REDIS_URL: a credential's limit is shared."""
    url = _redis_or_skip()
    _fifth_is_refused([make_world(rate_limit=4, redis_url=url) for _ in range(2)])


def test_an_unreachable_redis_lets_requests_through(make_world, caplog) -> None:
    world = make_world(rate_limit=1, redis_url="redis://127.0.0.1:1/0")
    path = PATH.format(a=world.account)
    for _ in range(3):
        response = world.client.get(path, headers=world.auth)
        assert response.status_code == 200
    assert "rate-limit counters unreachable" in caplog.text
