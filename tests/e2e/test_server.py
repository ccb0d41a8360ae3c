"""The real server as a process: durability across SIGKILL, clean SIGTERM, concurrent upserts."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCOUNT, TOKEN

# A client socket the server dropped mid-start-up can be collected unclosed at any later
# moment; that says nothing about buildsd, so it must not fail whichever test is running.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATH = f"/client/v4/accounts/{ACCOUNT}/builds/repos/connections"


def body(repo_id: str, name: str = "repo") -> dict[str, str]:
    return {
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": repo_id,
        "repo_name": name,
    }


def test_every_acknowledged_write_survives_sigkill(start_server) -> None:
    server = start_server()
    acknowledged = {}
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        for i in range(50):
            response = client.put(PATH, json=body(str(i)))
            assert response.status_code == 200
            acknowledged[str(i)] = response.json()["result"]["repo_connection_uuid"]
    server.stop(signal.SIGKILL)

    again = start_server()
    with httpx.Client(base_url=again.url, headers=AUTH) as client:
        listed = client.get(PATH, params={"per_page": 200}).json()
    assert {c["repo_id"]: c["repo_connection_uuid"] for c in listed["result"]} == acknowledged


def test_sigterm_shuts_down_cleanly(start_server) -> None:
    server = start_server()
    assert httpx.put(server.url + PATH, json=body("1"), headers=AUTH).status_code == 200
    # uvicorn finishes the shutdown (lifespan, database closed), then re-raises the signal, as
    # a well-behaved daemon does: the exit status is "terminated by SIGTERM".
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()


def test_first_run_prints_the_bootstrap_once(start_server) -> None:
    first = start_server(BUILDSD_BOOTSTRAP_TOKEN="", BUILDSD_BOOTSTRAP_ACCOUNT_ID="")
    first.stop()
    text = first.log.read_text()
    assert "API token" in text and "admin API key" in text
    token = next(line.split()[2] for line in text.splitlines() if "API token" in line)
    account = next(line.split()[2] for line in text.splitlines() if "account id" in line)
    second = start_server(BUILDSD_BOOTSTRAP_TOKEN="", BUILDSD_BOOTSTRAP_ACCOUNT_ID="")
    path = f"/client/v4/accounts/{account}/builds/repos/connections"
    response = httpx.put(
        second.url + path, json=body("1"), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    second.stop()
    assert "API token" not in second.log.read_text()


def test_concurrent_puts_of_one_repository_make_one_row(start_server) -> None:
    servers = [start_server(), start_server()]  # two processes, one database

    def put(i: int) -> str:
        url = servers[i % 2].url + PATH
        response = httpx.put(url, json=body("777", f"name-{i}"), headers=AUTH, timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["result"]["repo_connection_uuid"])

    with ThreadPoolExecutor(max_workers=24) as pool:
        uuids = set(pool.map(put, range(24)))
    assert len(uuids) == 1
    listed = httpx.get(servers[0].url + PATH, headers=AUTH, params={"repo_id": "777"}).json()
    assert listed["result_info"]["total_count"] == 1
    # The unfiltered total is the account's kept counter: exact under the same race.
    everything = httpx.get(servers[1].url + PATH, headers=AUTH).json()
    assert everything["result_info"]["total_count"] == len(everything["result"]) == 1


def test_the_sender_process_stops_with_its_server_even_on_sigkill(start_server) -> None:
    """`serve` runs forge updates in a child (forges/sender_process.py) that cannot outlive it:
    a SIGTERM stops it, and so does the end of its stdin when the server dies by SIGKILL."""
    from tests.forges.test_sender_process import senders_of, wait_for

    for sig in (signal.SIGTERM, signal.SIGKILL):
        pid = start_server().process.pid
        (child,) = wait_for(lambda pid=pid: senders_of(pid))
        os.kill(pid, sig)
        wait_for(lambda child=child: not Path(f"/proc/{child}").exists(), timeout=15)
