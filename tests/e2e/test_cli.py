"""The admin CLI as scripts use it: the created value is the last line of stdout, also while a
server runs on the same database."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import BUILDSD

# A client socket the server dropped mid-start-up can be collected unclosed at any later
# moment; that says nothing about buildsd, so it must not fail whichever test is running.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def buildsd(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*BUILDSD, *args], env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


def test_admin_commands_while_a_server_runs(env: dict[str, str], start_server) -> None:
    server = start_server()
    account = last_line(buildsd(env, "accounts", "create", "--name", "team"))
    assert re.fullmatch(r"[0-9a-f]{32}", account)
    assert account in buildsd(env, "accounts", "list").stdout

    token = last_line(
        buildsd(
            env,
            "tokens",
            "create",
            "--account",
            account,
            "--permission",
            "Workers CI Read",
            "--permission",
            "Workers CI Write",
            "--name",
            "ci",
        )
    )
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", token)
    path = f"/client/v4/accounts/{account}/builds/repos/connections"
    body = {
        "provider_account_id": "1",
        "provider_account_name": "o",
        "provider_type": "github",
        "repo_id": "1",
        "repo_name": "r",
    }
    auth = {"Authorization": f"Bearer {token}"}
    # A second account: it connects only what it was granted (D21).
    assert httpx.put(server.url + path, json=body, headers=auth).status_code == 404
    grant = ["grants", "add", "--account", account, "--provider", "github"]
    buildsd(env, *grant, "--owner-id", "1", "--owner", "o")
    assert httpx.put(server.url + path, json=body, headers=auth).status_code == 200

    key = last_line(
        buildsd(env, "users", "create", "--email", "Dev@Example.com", "--account", account)
    )
    assert re.fullmatch(r"[0-9a-f]{37}", key)
    legacy = {"X-Auth-Email": "dev@example.com", "X-Auth-Key": key}
    assert httpx.get(server.url + path, headers=legacy).status_code == 200

    listing = buildsd(env, "tokens", "list", "--account", account).stdout
    assert "ci" in listing and token not in listing
    token_id = listing.split()[0]
    assert "revoked" in last_line(buildsd(env, "tokens", "revoke", token_id))
    time.sleep(1.2)  # the server trusts a looked-up credential for up to one second
    refused = httpx.put(server.url + path, json=body, headers=auth)
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == 12006


def test_account_token_and_expiry(env: dict[str, str]) -> None:
    account = last_line(buildsd(env, "accounts", "create", "--name", "team"))
    token = last_line(
        buildsd(
            env,
            "tokens",
            "create",
            "--account",
            account,
            "--permission",
            "Workers CI Read",
            "--owner",
            "account",
            "--expires-on",
            "2099-01-01T00:00:00Z",
        )
    )
    assert len(token) == 40
    listing = buildsd(env, "tokens", "list", "--account", account).stdout
    assert "account" in listing and "2099-01-01T00:00:00.000Z" in listing


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "create", "--account", "f" * 32, "--permission", "Workers CI Read"),
        ("tokens", "create", "--account", "x", "--permission", "Workers CI Admin"),
        ("users", "create", "--email", "not-an-email", "--account", "f" * 32),
        ("tokens", "revoke", "f" * 32),
    ],
)
def test_bad_admin_input_fails_with_a_message(env: dict[str, str], args: tuple[str, ...]) -> None:
    done = buildsd(env, *args, ok=False)
    assert done.returncode != 0
    assert "Error" in done.stderr and "Traceback" not in done.stderr


def test_bad_setting_fails_before_anything_starts(env: dict[str, str]) -> None:
    done = buildsd({**env, "BUILDSD_STRICT": "maybe"}, "serve", ok=False)
    assert done.returncode != 0 and "BUILDSD_STRICT" in done.stderr
    done = buildsd({**env, "BUILDSD_DATABASE_URL": "mysql://x"}, "db", "upgrade", ok=False)
    assert done.returncode != 0 and "BUILDSD_DATABASE_URL" in done.stderr
