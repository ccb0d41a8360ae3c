"""Fixtures: a real database per test (SQLite file, or PostgreSQL when BUILDSD_TEST_DATABASE_URL
is set), the app behind a real HTTP client, and a small world of accounts and credentials.

Every successful response to a spec operation is checked against the spec's schemas as it
arrives, so the whole suite doubles as a contract test.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from buildsd import logs, migrations, tables
from buildsd.app import build_services, create_app
from buildsd.config import Settings, load_settings
from buildsd.services import Services
from buildsd.store import builds
from tests.contract import spec

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "buildsd-test-token-0123456789abcdefghij"
PG_URL = os.environ.get("BUILDSD_TEST_DATABASE_URL", "")
SEEN_OPERATIONS: set[str] = set()
# Secrets the tests send (build-token secrets, secret variables): no response body and no log
# line of the whole suite may contain one.
KNOWN_SECRETS: set[str] = {
    "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T",
    "s3cr3t-value-that-must-never-leak",
}


def database_named(url: str, database: str) -> str:
    """`url` with another database; a Unix-socket URL (`postgresql:///db?host=/run/...`) too."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database made once per run: a SQLite file to copy, or a fresh PG database
    (dropped at the end even when its migration failed)."""
    if PG_URL:
        import psycopg

        name = f"buildsd_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = database_named(PG_URL, name)
            migrations.upgrade(url)
            yield url
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        migrations.upgrade(f"sqlite:///{path}")
        yield str(path)


@pytest.fixture
def database_url(template_db: str, tmp_path: Path) -> str:
    """An empty, migrated database for this test alone."""
    if PG_URL:
        import psycopg

        names = ", ".join(t.name for t in tables.metadata.sorted_tables)
        with psycopg.connect(template_db, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {names} CASCADE")
        return template_db
    path = tmp_path / "buildsd.sqlite3"
    shutil.copy(template_db, path)
    return f"sqlite:///{path}"


def pytest_configure(config: pytest.Config) -> None:
    """Temporary directories of this run's own, not under the shared /tmp/pytest-of-<user>:
    every pytest session resets that one to 0700, and bwrap, run as the build uid, must pass
    through to the workspaces (let_builds_through). Removed when the run ends."""
    if config.option.basetemp is None:
        config.option.basetemp = str(Path(tempfile.gettempdir()) / f"buildsd-tests-{os.getpid()}")
        config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))


def let_builds_through(path: Path) -> None:
    """pytest makes its temporary directories 0700; bwrap, run as the unprivileged build uid,
    must pass through them to bind a workspace (docs/builds.md)."""
    top = Path(tempfile.gettempdir())
    for step in [path, *path.parents]:
        if step == top or not step.is_relative_to(top):
            break
        step.chmod(step.stat().st_mode | 0o011)


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    let_builds_through(tmp_path)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "database_url": database_url,
            "bootstrap_token": TOKEN,
            "bootstrap_account_id": ACCOUNT,
            "rate_limit": 0,
            "runner_slots": 0,  # builds stay queued unless a test runs a runner
            # Forge updates from a task on the app's loop; tests/forges/test_sender_process.py
            # and the real servers of tests/e2e run the sender in its own process.
            "sender": "inline",
        }
        values.update(overrides)
        return load_settings(env={}, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def check_contract(response: httpx.Response) -> None:
    """Every successful answer to a spec operation must match the spec's schema; no answer may
    contain a secret."""
    request = response.request
    response.read()
    leaked = [secret for secret in KNOWN_SECRETS if secret in response.text]
    assert not leaked, f"{request.method} {request.url.path} leaked a secret"
    name = spec.operation_for(request.method, request.url.path)
    if name is None or response.status_code >= 300:
        return
    response.read()
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    spec.check_result(name, body["result"])
    if "result_info" in body:
        spec.check(body["result_info"], spec.SCHEMAS["builds_PaginationInfo"], "result_info")
    SEEN_OPERATIONS.add(name)


@pytest.fixture
def access_log() -> logs.AccessLog:
    """The writer of the lines written on every request (access lines, build states) that the
    test's apps are given (make_world); `flush()` it, then read its `stream`."""
    return logs.AccessLog(io.BytesIO())


@pytest.fixture(autouse=True)
def no_secret_in_logs(
    caplog: pytest.LogCaptureFixture, access_log: logs.AccessLog
) -> Iterator[None]:
    """Whatever the server logged during a test must not contain a secret: through `logging`,
    or through the writer of the lines written on every request (access, build states)."""
    caplog.set_level("DEBUG")
    yield
    access_log.flush()
    assert isinstance(access_log.stream, io.BytesIO)
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    text += access_log.stream.getvalue().decode("utf-8", "replace")
    assert not [secret for secret in KNOWN_SECRETS if secret in text], "a secret reached a log"


@dataclass
class World:
    """The accounts and credentials a test talks with."""

    client: TestClient
    services: Services
    account: str = ACCOUNT
    token: str = TOKEN

    def run(self, coro: Any) -> Any:
        """Run a coroutine of the services on the app's own event loop."""

        async def wrapped() -> Any:
            return await coro

        return self.client.portal.call(wrapped)  # type: ignore[union-attr]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def new_token(self, *permissions: str, account: str | None = None, **kw: Any) -> str:
        created = self.run(
            self.services.admin.create_token(
                account_id=account or self.account,
                permissions=list(permissions) or ["Workers CI Write"],
                **kw,
            )
        )
        return str(created.value)

    def new_account(self, name: str = "other") -> str:
        return str(self.run(self.services.admin.create_account(name)))

    def grant(
        self,
        account: str | None = None,
        owner_id: str = "41612145",
        owner: str = "octo-org",
        provider_type: str = "github",
        repos: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """Let the account connect the owner's repositories (all, or `repos`: (id, name)), as
        `buildsd grants add` does; the owner is tests.api.flows.connection_body's by default.
        Needed once a test has two accounts (D21)."""
        made = self.services.grants.add(
            account or self.account, provider_type, owner_id, owner, repos
        )
        return str(self.run(made).grant_id)


def _client(app: Any) -> TestClient:
    client = TestClient(app, raise_server_exceptions=False)
    client.event_hooks = {"request": [], "response": [check_contract]}
    return client


@pytest.fixture
def make_world(
    make_settings: Callable[..., Settings], access_log: logs.AccessLog
) -> Iterator[Callable[..., World]]:
    """Build a running app with the given settings; closed at the end of the test."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> World:
        settings = make_settings(**overrides)
        app = create_app(settings, build_services(settings, access_log))
        client = _client(app)
        client.__enter__()
        opened.append(client)
        world = World(client=client, services=app.state.services)
        world.run(world.services.admin.bootstrap())
        return world

    yield make
    for client in opened:
        stale = client.portal.call(_stale_kept_values, client.app.state.services.db)  # type: ignore[union-attr]
        client.__exit__(None, None, None)
        assert not stale, f"kept values that no longer hold: {stale}"


# What the database keeps beside the rows, and what it must equal: each query lists the keys
# whose kept value differs from the one counted or rendered from the rows now.
_KEPT = {
    # A write that changes what the wire shows and forgets store.builds.rerender.
    "build_json": "SELECT build_uuid AS k, build_json AS kept, {json} AS fresh "
    "FROM builds WHERE build_json IS NOT NULL",
    "worker_build_counts": "SELECT c.account_id || '/' || c.external_script_id AS k, "
    "c.build_count AS kept, (SELECT COUNT(*) FROM builds b WHERE b.account_id = c.account_id "
    "AND b.external_script_id = c.external_script_id) AS fresh FROM worker_build_counts c",
    "account_connection_counts": "SELECT a.id AS k, COALESCE((SELECT live_count FROM "
    "account_connection_counts c WHERE c.account_id = a.id), 0) AS kept, (SELECT COUNT(*) "
    "FROM repo_connections r WHERE r.account_id = a.id AND r.deleted_on IS NULL) AS fresh "
    "FROM accounts a",
    "account_worker_counts": "SELECT a.id AS k, COALESCE((SELECT worker_count FROM "
    "account_worker_counts c WHERE c.account_id = a.id), 0) AS kept, (SELECT COUNT(*) "
    "FROM workers w WHERE w.account_id = a.id) AS fresh FROM accounts a",
}


async def _stale_kept_values(db: Any) -> list[str]:
    """Every kept value (_KEPT) must equal what the rows give now."""
    stale = []
    async with db.connection() as conn:
        for name, sql in _KEPT.items():
            for row in await conn.all(sql.format(json=builds.json_select(conn.dialect))):
                kept, fresh = row["kept"], row["fresh"]
                if name == "build_json":
                    kept, fresh = json.loads(kept), json.loads(fresh)
                if kept != fresh:
                    stale.append(f"{name} {row['k']}: {kept} kept, {fresh} now")
    return stale


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """The virtual clock stopped at now for the test: every row it writes has one timestamp."""
    from buildsd import clock

    clock.freeze(clock.epoch_ms())
    yield
    clock.reset_virtual()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


@pytest.fixture
def client(world: World) -> TestClient:
    return world.client


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, in the controller: a worker's operations join the whole run's tally."""
    SEEN_OPERATIONS.update(getattr(node, "workeroutput", {}).get("seen_operations", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """When the whole suite ran and passed, every operation of the spec must have had at least
    one successful answer checked against its schema: the suite is the contract test. Under
    pytest-xdist each worker hands its tally to the controller, which checks the union."""
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: it saw only its share of the tests
        workeroutput["seen_operations"] = sorted(SEEN_OPERATIONS)
        return
    whole = [Path(arg.split("::")[0]).resolve() for arg in config.args] == [Path(__file__).parent]
    if exitstatus != 0 or not whole or config.option.keyword or config.option.markexpr:
        return
    unchecked = sorted(set(spec.OPERATIONS) - SEEN_OPERATIONS)
    if unchecked:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"spec operations never answered successfully: {unchecked}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
