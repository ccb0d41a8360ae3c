"""The set-up flows real clients run, end to end over HTTP against a real server process."""

from __future__ import annotations

import fnmatch

import httpx
import pytest

from tests.conftest import ACCOUNT, KNOWN_SECRETS, TOKEN

# A client socket the server dropped mid-start-up can be collected unclosed at any later
# moment; that says nothing about buildsd, so it must not fail whichever test is running.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

TAG = "dd7160bb9cef458093557736f4b9e75b"
SECRET_VALUE = "s3cr3t-value-that-must-never-leak"
BUILD_TOKEN = "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T"


def result(response: httpx.Response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True, body
    return body["result"]


def client(server) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{ACCOUNT}/builds",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def test_setup_script_flow(start_server) -> None:
    server = start_server()
    with client(server) as api:
        run_setup_flow(api)
    server.stop()
    log = server.log.read_text()
    assert not [secret for secret in KNOWN_SECRETS if secret in log]


def run_setup_flow(api: httpx.Client) -> None:
    conn = result(
        api.put(
            "/repos/connections",
            json={
                "provider_account_id": "41612145",
                "provider_account_name": "octo-org",
                "provider_type": "github",
                "repo_id": "562843111",
                "repo_name": "my-worker",
            },
        )
    )
    token = result(
        api.post(
            "/tokens",
            json={
                "build_token_name": "deploy",
                "build_token_secret": BUILD_TOKEN,
                "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b",
            },
        )
    )
    trigger = result(
        api.post(
            "/triggers",
            json={
                "external_script_id": TAG,
                "repo_connection_uuid": conn["repo_connection_uuid"],
                "build_token_uuid": token["build_token_uuid"],
                "trigger_name": "Deploy main",
                "branch_includes": ["main"],
                "build_command": "npm run build",
                "deploy_command": "npx wrangler deploy",
            },
        )
    )
    uuid = trigger["trigger_uuid"]
    variables = result(
        api.patch(
            f"/triggers/{uuid}/environment_variables",
            json={
                "NODE_ENV": {"value": "production", "is_secret": False},
                "API_KEY": {"value": SECRET_VALUE, "is_secret": True},
            },
        )
    )
    assert variables["API_KEY"]["value"] is None

    build = result(api.post(f"/triggers/{uuid}/builds", json={"branch": "main"}))
    assert build["status"] == "queued"
    assert result(api.get(f"/builds/{build['build_uuid']}"))["build_uuid"] == build["build_uuid"]
    listed = api.get(f"/workers/{TAG}/builds").json()
    assert [b["build_uuid"] for b in listed["result"]] == [build["build_uuid"]]
    assert listed["result_info"]["next_page"] is False
    latest = result(api.get("/builds/latest", params={"external_script_ids": TAG}))
    assert latest["builds"][TAG]["build_uuid"] == build["build_uuid"]

    # The MCP client's log loop: follow the cursor while it is present and truncated is true.
    logs = result(api.get(f"/builds/{build['build_uuid']}/logs"))
    while logs["cursor"] and logs["truncated"]:
        logs = result(api.get(f"/builds/{build['build_uuid']}/logs?cursor={logs['cursor']}"))
    cancelled = result(api.put(f"/builds/{build['build_uuid']}/cancel"))
    assert cancelled["build_outcome"] == "cancelled"

    assert result(api.delete(f"/triggers/{uuid}")) is None
    assert result(api.delete(f"/tokens/{token['build_token_uuid']}")) is None
    assert result(api.get(f"/workers/{TAG}/triggers")) == []


def test_python_client_picks_the_trigger_matching_a_branch(start_server) -> None:
    """What a deploy script does: find the Worker's trigger for a branch, build that branch."""
    server = start_server()
    api = httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{ACCOUNT}/builds",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    conn = result(
        api.put(
            "/repos/connections",
            json={
                "provider_account_id": "1",
                "provider_account_name": "o",
                "provider_type": "gitlab",
                "repo_id": "77",
                "repo_name": "site",
            },
        )
    )
    token = result(
        api.post(
            "/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": BUILD_TOKEN,
                "cloudflare_token_id": "x",
            },
        )
    )
    common = {
        "external_script_id": TAG,
        "repo_connection_uuid": conn["repo_connection_uuid"],
        "build_token_uuid": token["build_token_uuid"],
        "build_command": "",
        "deploy_command": "npx wrangler deploy",
    }
    production = result(
        api.post(
            "/triggers", json={**common, "trigger_name": "Production", "branch_includes": ["main"]}
        )
    )
    previews = result(
        api.post(
            "/triggers",
            json={
                **common,
                "trigger_name": "Previews",
                "branch_includes": ["*"],
                "branch_excludes": ["main"],
                "deploy_command": "npx wrangler versions upload",
            },
        )
    )

    def trigger_for(branch: str) -> str:
        for trigger in result(api.get(f"/workers/{TAG}/triggers")):
            if trigger["deleted_on"] is not None:
                continue
            included = any(fnmatch.fnmatchcase(branch, p) for p in trigger["branch_includes"])
            excluded = any(fnmatch.fnmatchcase(branch, p) for p in trigger["branch_excludes"])
            if included and not excluded:
                return str(trigger["trigger_uuid"])
        raise LookupError(branch)

    assert trigger_for("main") == production["trigger_uuid"]
    assert trigger_for("feature/x") == previews["trigger_uuid"]
    build = result(
        api.post(f"/triggers/{trigger_for('feature/x')}/builds", json={"branch": "feature/x"})
    )
    assert build["trigger"]["trigger_name"] == "Previews"
    assert build["build_trigger_metadata"]["deploy_command"] == "npx wrangler versions upload"
