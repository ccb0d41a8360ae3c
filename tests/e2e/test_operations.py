"""Operations: online SQLite backup and restore, and secret-key rotation, through the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCOUNT, PG_URL, TOKEN
from tests.e2e.test_cli import buildsd, last_line

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="backup/restore commands are SQLite's")
PATH = f"/client/v4/accounts/{ACCOUNT}/builds/repos/connections"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "s3cr3t-value-that-must-never-leak"


def put(server, repo_id: str) -> None:
    body = {
        "provider_account_id": "1",
        "provider_account_name": "o",
        "provider_type": "github",
        "repo_id": repo_id,
        "repo_name": "r",
    }
    assert httpx.put(server.url + PATH, json=body, headers=AUTH).status_code == 200


def count(server) -> int:
    response = httpx.get(server.url + PATH, headers=AUTH, params={"per_page": 200})
    return int(response.json()["result_info"]["total_count"])


@sqlite_only
def test_backup_while_serving_then_restore(env, start_server, tmp_path: Path) -> None:
    server = start_server()
    for i in range(20):
        put(server, str(i))
    backup = tmp_path / "backup.sqlite3"
    assert last_line(buildsd(env, "db", "backup", str(backup))) == str(backup)
    for i in range(20, 30):
        put(server, str(i))
    assert count(server) == 30
    server.stop()
    assert "restored" in last_line(buildsd(env, "db", "restore", str(backup)))
    again = start_server()
    assert count(again) == 20
    done = buildsd(env, "db", "backup", str(backup), ok=False)
    assert done.returncode != 0 and "exists" in done.stderr


@sqlite_only
def test_restore_refuses_what_is_not_a_buildsd_database(env, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    done = buildsd(env, "db", "restore", str(other), ok=False)
    assert done.returncode != 0 and "not a buildsd database" in done.stderr


def test_rotate_key_re_encrypts_every_secret(env, start_server, tmp_path: Path) -> None:
    server = start_server()
    base = f"{server.url}/client/v4/accounts/{ACCOUNT}/builds"
    with httpx.Client(base_url=base, headers=AUTH) as api:
        conn = api.put(
            "/repos/connections",
            json={
                "provider_account_id": "1",
                "provider_account_name": "o",
                "provider_type": "github",
                "repo_id": "1",
                "repo_name": "r",
            },
        ).json()["result"]
        token = api.post(
            "/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": SECRET,
                "cloudflare_token_id": "y",
            },
        ).json()["result"]
        trigger = api.post(
            "/triggers",
            json={
                "external_script_id": "ab" * 16,
                "repo_connection_uuid": conn["repo_connection_uuid"],
                "build_token_uuid": token["build_token_uuid"],
                "trigger_name": "t",
                "branch_includes": ["main"],
                "build_command": "",
                "deploy_command": "true",
            },
        ).json()
        uuid = trigger["result"]["trigger_uuid"]
        api.patch(
            f"/triggers/{uuid}/environment_variables",
            json={"S": {"value": SECRET, "is_secret": True}},
        )
    server.stop()
    key_file = Path(env["BUILDSD_DATA_DIR"]) / "secret.key"
    old_key = key_file.read_text()
    assert "re-encrypted 2 secret(s)" in last_line(buildsd(env, "secrets", "rotate-key"))
    assert key_file.read_text() != old_key
    # A fresh server reads both secrets with the new key: the build token through the runner's
    # path, the variable through the API's "send back what you read" path.
    again = start_server()
    with httpx.Client(base_url=base.replace(server.url, again.url), headers=AUTH) as api:
        kept = api.patch(
            f"/triggers/{uuid}/environment_variables",
            json={"S": {"value": None, "is_secret": True}},
        )
        assert kept.status_code == 200, kept.text
