"""The admin CLI as scripts use it: the created value is the last line of stdout, also while a
server runs on the same database."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import httpx
import pytest

from buildsd.app import build_services
from buildsd.config import load_settings
from tests.conftest import KNOWN_SECRETS
from tests.e2e.conftest import BUILDSD
from tests.webhooks.payloads import github_headers

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
    grant_id = last_line(buildsd(env, *grant, "--owner-id", "1", "--owner", "o"))
    assert httpx.put(server.url + path, json=body, headers=auth).status_code == 200
    # Revoking it takes the connection along, and the running server refuses at once.
    revoked = buildsd(env, "grants", "revoke", grant_id)
    assert revoked.stderr.strip() == "deleted 1 connection(s) no other grant covers"
    assert httpx.put(server.url + path, json=body, headers=auth).status_code == 404
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
        ("grants", "add", "--account", "f" * 32, "--provider", "github", "--owner-id", "1",
         "--owner", "o"),
        ("grants", "add", "--account", "x", "--provider", "github", "--owner-id", "1",
         "--owner", "o", "--repo", "no-name"),
        ("grants", "add", "--account", "x", "--provider", "bitbucket", "--owner-id", "1",
         "--owner", "o"),
        ("grants", "revoke", "6f1c9e3e-1111-4222-8333-944455556666"),
        ("webhooks", "secret", "--account", "f" * 32, "--provider", "github"),
        ("webhooks", "secret", "--account", "x", "--provider", "bitbucket"),
    ],
)  # fmt: skip
def test_bad_admin_input_fails_with_a_message(env: dict[str, str], args: tuple[str, ...]) -> None:
    done = buildsd(env, *args, ok=False)
    assert done.returncode != 0
    assert "Error" in done.stderr and "Traceback" not in done.stderr


def test_bad_setting_fails_before_anything_starts(env: dict[str, str]) -> None:
    done = buildsd({**env, "BUILDSD_STRICT": "maybe"}, "serve", ok=False)
    assert done.returncode != 0 and "BUILDSD_STRICT" in done.stderr
    done = buildsd({**env, "BUILDSD_DATABASE_URL": "mysql://x"}, "db", "upgrade", ok=False)
    assert done.returncode != 0 and "BUILDSD_DATABASE_URL" in done.stderr


def test_grants_and_webhook_secrets(env: dict[str, str]) -> None:
    first = last_line(buildsd(env, "accounts", "list")).split()[0]  # the bootstrap account
    account = last_line(buildsd(env, "accounts", "create", "--name", "team"))
    add = ["grants", "add", "--account", account, "--provider", "github"]
    owner = ["--owner-id", "41612145", "--owner", "octo-org"]
    done = buildsd(env, *add, *owner, "--repo", "562843111:my-worker", "--repo", "7:site")
    grant_id = last_line(done)
    assert re.fullmatch(r"[0-9a-f-]{36}", grant_id)
    assert "562843111:my-worker, 7:site" in done.stderr
    everything = last_line(buildsd(env, *add, "--owner-id", "9", "--owner", "acme"))
    listing = buildsd(env, "grants", "list").stdout.splitlines()
    assert [line.split()[:5] for line in listing] == [
        [grant_id, account, "github", "41612145", "octo-org"],
        [everything, account, "github", "9", "acme"],
    ]
    assert listing[0].endswith("562843111:my-worker, 7:site") and listing[1].endswith("all")
    assert buildsd(env, "grants", "list", "--account", first).stdout == ""
    assert last_line(buildsd(env, "grants", "revoke", grant_id)) == f"revoked {grant_id}"
    assert grant_id not in buildsd(env, "grants", "list").stdout
    assert buildsd(env, "grants", "revoke", grant_id, ok=False).returncode != 0

    made = buildsd(env, "webhooks", "secret", "--account", account, "--provider", "github")
    secret = last_line(made)
    KNOWN_SECRETS.add(secret)
    assert len(secret) >= 40 and f"/webhooks/github/{account}" in made.stderr
    assert secret not in made.stderr
    # Shown once: no command prints it again, and the database holds only its ciphertext.
    for args in (("grants", "list"), ("accounts", "list"), ("webhooks", "--help")):
        assert secret not in buildsd(env, *args).stdout
    settings = load_settings(env)

    async def stored() -> list[str]:
        services = build_services(settings)
        await services.open()
        try:
            async with services.db.connection() as conn:
                rows = await conn.all("SELECT secret FROM webhook_secrets")
        finally:
            await services.close()
        return [row["secret"] for row in rows]

    [ciphertext] = asyncio.run(stored())
    assert secret not in ciphertext
    again = last_line(
        buildsd(env, "webhooks", "secret", "--account", account, "--provider", "github")
    )
    KNOWN_SECRETS.add(again)
    assert again != secret and len(asyncio.run(stored())) == 1
    # Key rotation re-encrypts it with the rest.
    assert "re-encrypted 1 secret(s)" in last_line(buildsd(env, "secrets", "rotate-key"))
    assert asyncio.run(stored()) != [ciphertext]
    body = b'{"zen": "Keep it logically awesome."}'
    headers = {k.lower(): v for k, v in github_headers(body, "ping", secret=again).items()}

    async def verify() -> None:
        services = build_services(load_settings(env))
        await services.open()
        try:
            await services.webhook_secrets.verify("github", account, headers, body)
        finally:
            await services.close()

    asyncio.run(verify())  # still the secret it was, under the new key
