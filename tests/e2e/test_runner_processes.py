"""Runners as real processes: a killed runner's build ends terminated, two runners never run
one build twice (on SQLite and, in CI, on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from buildsd.app import build_services
from buildsd.config import load_settings
from tests.conftest import ACCOUNT, KNOWN_SECRETS, TOKEN
from tests.gitrepo import make_repo
from tests.webhooks.payloads import github_headers, github_push

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
TAG = "dd7160bb9cef458093557736f4b9e75b"


def runner_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "BUILDSD_RUNNER_SLOTS": "2",
        "BUILDSD_LEASE_SECONDS": "2",
        "BUILDSD_GIT_URL_GITHUB": f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git",
        **extra,
    }


def api(server) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{ACCOUNT}/builds",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )


def result(response: httpx.Response):
    assert response.status_code == 200, response.text
    return response.json()["result"]


def make_trigger(
    client: httpx.Client, build_command: str, deploy_command: str = "true", tag: str = TAG
) -> str:
    conn = result(
        client.put(
            "/repos/connections",
            json={
                "provider_account_id": "1",
                "provider_account_name": "octo-org",
                "provider_type": "github",
                "repo_id": "1",
                "repo_name": "my-worker",
            },
        )
    )
    token = result(
        client.post(
            "/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": "x" * 40,
                "cloudflare_token_id": "y",
            },
        )
    )
    trigger = result(
        client.post(
            "/triggers",
            json={
                "external_script_id": tag,
                "repo_connection_uuid": conn["repo_connection_uuid"],
                "build_token_uuid": token["build_token_uuid"],
                "trigger_name": "t",
                "branch_includes": ["main"],
                "build_command": build_command,
                "deploy_command": deploy_command,
            },
        )
    )
    return str(trigger["trigger_uuid"])


def wait_status(client: httpx.Client, build_uuid: str, statuses: tuple[str, ...], timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        build = result(client.get(f"/builds/{build_uuid}"))
        if build["status"] in statuses:
            return build
        assert time.monotonic() < deadline, f"still {build['status']}"
        time.sleep(0.1)


def test_a_killed_runners_build_is_terminated_within_the_lease(start_server, tmp_path) -> None:
    make_repo(tmp_path)
    first = start_server(**runner_env(tmp_path))
    with api(first) as client:
        trigger = make_trigger(client, "exec sleep 120")
        build = result(client.post(f"/triggers/{trigger}/builds", json={"branch": "main"}))
        wait_status(client, build["build_uuid"], ("running",), 30)
    first.stop(signal.SIGKILL)
    second = start_server(**runner_env(tmp_path))
    started = time.monotonic()
    with api(second) as client:
        done = wait_status(client, build["build_uuid"], ("stopped",), 20)
        assert done["build_outcome"] == "terminated"
        assert time.monotonic() - started < 10  # lease 2 s, reaped every second
        lines = [
            text for _, text in result(client.get(f"/builds/{build['build_uuid']}/logs"))["lines"]
        ]
    assert any("stopped renewing its lease" in line for line in lines)


def processes_with(token: str) -> list[int]:
    """Live processes whose command line holds `token` (a build's pids are its namespace's)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError):
            zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            if token.encode() in (entry / "cmdline").read_bytes() and not zombie:
                found.append(int(entry.name))
    return found


def wait_line(client: httpx.Client, build_uuid: str, line: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        lines = [text for _, text in result(client.get(f"/builds/{build_uuid}/logs"))["lines"]]
        if line in lines:
            return
        assert time.monotonic() < deadline, f"no line {line!r} in {lines}"
        time.sleep(0.1)


def test_a_sigkilled_server_leaves_no_process_and_no_workspace(start_server, tmp_path) -> None:
    """bwrap --die-with-parent ends the build with its runner; the next runner removes its
    workspace once the build is terminated."""
    make_repo(tmp_path)
    data = tmp_path / "data"
    token = f"30.{os.getpid():07d}"  # the deploy command's sleep, a duration no one else uses
    first = start_server(**runner_env(tmp_path))
    with api(first) as client:
        trigger = make_trigger(client, "true", deploy_command=f"echo deploying; sleep {token}")
        build = result(client.post(f"/triggers/{trigger}/builds", json={"branch": "main"}))
        wait_line(client, build["build_uuid"], "deploying")
    workspace = data / "builds" / build["build_uuid"]
    assert workspace.is_dir() and processes_with(token)
    first.stop(signal.SIGKILL)
    try:
        deadline = time.monotonic() + 5
        while processes_with(token):
            assert time.monotonic() < deadline, "the deploy command outlived its runner"
            time.sleep(0.05)
    finally:
        for pid in processes_with(token):
            os.kill(pid, signal.SIGKILL)
    second = start_server(**runner_env(tmp_path))
    with api(second) as client:
        done = wait_status(client, build["build_uuid"], ("stopped",), 20)
    assert done["build_outcome"] == "terminated"
    deadline = time.monotonic() + 10
    while workspace.exists():
        assert time.monotonic() < deadline, f"{workspace} is still there"
        time.sleep(0.05)
    assert "removed the workspace of build" in second.log.read_text()


def test_two_runner_processes_never_run_one_build_twice(start_server, tmp_path) -> None:
    make_repo(tmp_path)
    server = start_server(**runner_env(tmp_path, BUILDSD_RUNNER_SLOTS="0"))
    workers = [
        start_server("worker", **runner_env(tmp_path, BUILDSD_RUNNER_SLOTS="3")) for _ in range(2)
    ]
    with api(server) as client:
        # The trigger's cache is the one place every run of its builds may write to.
        trigger = make_trigger(
            client, 'mktemp "$npm_config_cache/../$WORKERS_CI_BUILD_UUID.XXXXXX"; sleep 0.2'
        )
        builds = [
            result(client.post(f"/triggers/{trigger}/builds", json={"branch": "main"}))
            for _ in range(12)
        ]
        for build in builds:
            done = wait_status(client, build["build_uuid"], ("stopped",), 60)
            assert done["build_outcome"] == "success"
    ran = tmp_path / "data" / "cache" / trigger
    runs = sorted(p.name.split(".")[0] for p in ran.iterdir() if p.is_file())
    assert runs == sorted(b["build_uuid"] for b in builds)  # each exactly once
    for worker in workers:
        assert worker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    logs = "".join(w.log.read_text() for w in workers)
    assert logs.count("slot(s)") == 2


def test_a_worker_matches_deliveries_no_server_matched(start_server, env, tmp_path) -> None:
    """A delivery stored while no `serve` matched it (here: none runs) is matched by a worker."""
    make_repo(tmp_path)
    secret = {"BUILDSD_GITHUB_WEBHOOK_SECRET": "worker-matches-it"}
    server = start_server(**runner_env(tmp_path, BUILDSD_RUNNER_SLOTS="0"), **secret)
    with api(server) as client:
        make_trigger(client, "true")
    server.stop()
    settings = load_settings({**env, **runner_env(tmp_path), **secret})
    body = json.dumps(github_push("main", repo_id=1)).encode()
    headers = {
        name.lower(): value
        for name, value in github_headers(
            body, secret=secret["BUILDSD_GITHUB_WEBHOOK_SECRET"]
        ).items()
    }

    async def store() -> None:
        services = build_services(settings)
        await services.open()
        try:
            await services.webhooks.receive("github", headers, body)
        finally:
            await services.close()

    async def matched() -> tuple[bool, int]:
        services = build_services(settings)
        await services.open()
        try:
            async with services.db.connection() as conn:
                delivery = await conn.one("SELECT processed_on FROM webhook_deliveries")
                built = await conn.one(
                    "SELECT COUNT(*) AS n FROM builds WHERE build_trigger_source = 'push_event'"
                )
        finally:
            await services.close()
        assert delivery is not None and built is not None
        return delivery["processed_on"] is not None, int(built["n"])

    asyncio.run(store())
    assert asyncio.run(matched()) == (False, 0)
    worker = start_server("worker", **runner_env(tmp_path), **secret)
    deadline = time.monotonic() + 30
    while asyncio.run(matched()) != (True, 1):
        assert time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.2)
    assert worker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)


def test_a_worker_routes_a_stored_per_account_delivery(start_server, env, tmp_path) -> None:
    """Two accounts connected to one repository; a delivery verified with B's own secret and
    stored while nothing matched it is matched by a `buildsd worker` into B alone (D22)."""
    make_repo(tmp_path)
    server = start_server(**runner_env(tmp_path, BUILDSD_RUNNER_SLOTS="0"))
    settings = load_settings({**env, **runner_env(tmp_path)})

    async def admin() -> tuple[str, str, str]:
        services = build_services(settings)
        await services.open()
        try:
            other = await services.admin.create_account("b")
            for account in (ACCOUNT, other):
                await services.grants.add(account, "github", "1", "octo-org")
            token = await services.admin.create_token(
                account_id=other, permissions=["Workers CI Write"]
            )
            secret = await services.webhook_secrets.create(other, "github")
        finally:
            await services.close()
        return other, token.value, secret

    other, token, secret = asyncio.run(admin())
    KNOWN_SECRETS.add(secret)
    with api(server) as client:
        make_trigger(client, "true")
    theirs = httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{other}/builds",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    with theirs:
        make_trigger(theirs, "true", tag="b" * 32)  # a tag is one account's (D16)
    server.stop()
    push = github_push("main", repo_id=1)
    push["repository"]["owner"]["id"] = 1  # make_trigger's owner, which both were granted
    body = json.dumps(push).encode()
    headers = {k.lower(): v for k, v in github_headers(body, secret=secret).items()}

    async def store() -> None:
        services = build_services(settings)
        await services.open()
        try:
            await services.webhooks.receive("github", headers, body, other)
        finally:
            await services.close()

    async def matched() -> tuple[bool, dict[str, int]]:
        services = build_services(settings)
        await services.open()
        try:
            async with services.db.connection() as conn:
                delivery = await conn.one("SELECT processed_on FROM webhook_deliveries")
                built = await conn.all(
                    "SELECT account_id, COUNT(*) AS n FROM builds "
                    "WHERE build_trigger_source = 'push_event' GROUP BY account_id"
                )
        finally:
            await services.close()
        assert delivery is not None
        return delivery["processed_on"] is not None, {r["account_id"]: r["n"] for r in built}

    asyncio.run(store())
    assert asyncio.run(matched()) == (False, {})
    worker = start_server("worker", **runner_env(tmp_path))
    deadline = time.monotonic() + 30
    while asyncio.run(matched()) != (True, {other: 1}):
        assert time.monotonic() < deadline, worker.log.read_text()
        time.sleep(0.2)
    assert worker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
