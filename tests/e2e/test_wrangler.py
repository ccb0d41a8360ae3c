"""wrangler itself (npm `wrangler`, Node 22) against a real `buildsd serve`, with only
CLOUDFLARE_API_BASE_URL changed: deploy, versions upload, deployments list, whoami."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.api.flows import connection_body, trigger_body
from tests.conftest import ACCOUNT
from tests.e2e.test_cli import buildsd, last_line
from tests.gitrepo import make_repo
from tests.wrangler import CACHE as WRANGLER_DIR
from tests.wrangler import Wrangler, install, make_project

pytestmark = pytest.mark.slow

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def wrangler(env: dict[str, str], start_server, tmp_path: Path) -> Wrangler:
    install()  # before the server starts: the first install takes a while
    token = last_line(
        buildsd(
            env,
            *("tokens", "create", "--account", ACCOUNT),
            *("--permission", "Workers Scripts Write", "--permission", "Workers CI Write"),
        )
    )
    server = start_server()
    return Wrangler(
        project=make_project(tmp_path / "project"),
        home=tmp_path / "home",
        api_url=server.url + "/client/v4",
        account_id=ACCOUNT,
        token=token,
    )


def _api(wrangler: Wrangler, path: str) -> httpx.Response:
    return httpx.get(
        f"{wrangler.api_url}/accounts/{ACCOUNT}{path}",
        headers={"Authorization": f"Bearer {wrangler.token}"},
    )


def test_deploy_stores_the_version_wrangler_prints(wrangler: Wrangler) -> None:
    first = wrangler.run("deploy")  # a new Worker: the script upload
    again = wrangler.run("deploy")  # an existing one: versions upload, then a deployment
    for done in (first, again):
        assert "Current Version ID" in done.stdout, done.stdout
    printed = re.findall(rf"Current Version ID: ({UUID})", first.stdout + again.stdout)
    assert len(printed) == 2 and printed[0] != printed[1]

    scripts = _api(wrangler, "/workers/scripts").json()["result"]
    assert [script["id"] for script in scripts] == ["my-worker"]
    tag = scripts[0]["tag"]
    versions = _api(wrangler, "/workers/scripts/my-worker/versions").json()["result"]["items"]
    assert {version["id"] for version in versions} == set(printed)
    deployments = _api(wrangler, "/workers/scripts/my-worker/deployments").json()["result"]
    latest = deployments["deployments"][0]
    assert latest["versions"] == [{"version_id": printed[1], "percentage": 100.0}]
    assert latest["source"] == "wrangler"
    service = _api(wrangler, "/workers/services/my-worker").json()["result"]
    assert service["default_environment"]["script"]["tag"] == tag
    # The Worker wrangler made is the one the Builds API knows by that tag (D24).
    listed = _api(wrangler, f"/builds/workers/{tag}/builds").json()
    assert listed["success"] is True and listed["result"] == []


def test_versions_upload_deployments_list_and_whoami(wrangler: Wrangler) -> None:
    wrangler.run("deploy")
    uploaded = wrangler.run("versions", "upload", "--message", "second")
    version = re.search(rf"Worker Version ID: ({UUID})", uploaded.stdout)
    assert version is not None, uploaded.stdout
    stored = _api(wrangler, f"/workers/scripts/my-worker/versions/{version[1]}").json()
    assert stored["result"]["annotations"]["workers/message"] == "second"
    # Uploaded, not deployed: the deployment still sends everything to the first version.
    listed = wrangler.run("deployments", "list")
    assert "100%" in listed.stdout and version[1] not in listed.stdout
    whoami = wrangler.run("whoami")
    assert "admin@buildsd.local" in whoami.stdout and ACCOUNT in whoami.stdout


def test_wrangler_reports_a_token_without_workers_scripts(
    wrangler: Wrangler, env: dict[str, str]
) -> None:
    wrangler.token = last_line(
        buildsd(env, "tokens", "create", "--account", ACCOUNT, "--permission", "Workers CI Read")
    )
    done = wrangler.run("deploy", check=False)
    assert done.returncode != 0
    assert "Authentication error [code: 10000]" in done.stdout + done.stderr


def test_a_build_deploys_to_buildsd_and_is_found_by_its_version(
    env: dict[str, str], start_server, tmp_path: Path
) -> None:
    """A client that starts from a Worker's name (list scripts → tag → connection → token →
    trigger → build → logs), whose build runs `wrangler deploy` against this buildsd (D25)."""
    node, wrangler_js = install()
    repo = make_repo(tmp_path)
    make_project(repo.work, name="name-in-the-repo")  # WRANGLER_CI_OVERRIDE_NAME wins
    repo.commit({}, "A Worker")
    token = last_line(
        buildsd(
            env,
            *("tokens", "create", "--account", ACCOUNT),
            *("--permission", "Workers Scripts Write", "--permission", "Workers CI Write"),
        )
    )
    buildsd(env, "workers", "create", "my-worker", "--account", ACCOUNT)
    server = start_server(
        BUILDSD_RUNNER_SLOTS="1",
        BUILDSD_DEPLOY_TARGET="self",
        BUILDSD_BUILD_READ_ONLY_PATHS=str(WRANGLER_DIR),  # node and wrangler, in the sandbox
        BUILDSD_GIT_URL_GITHUB=f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git",
    )
    api = httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{ACCOUNT}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    scripts = api.get("/workers/scripts").json()["result"]
    tag = next(script["tag"] for script in scripts if script["id"] == "my-worker")
    connection = api.put("/builds/repos/connections", json=connection_body()).json()["result"]
    build_token = api.post(
        "/builds/tokens",
        json={
            "build_token_name": "deploy",
            "build_token_secret": token,
            "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b",
        },
    ).json()["result"]
    deploy = f"WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true {node} {wrangler_js} deploy"
    made = api.post(
        "/builds/triggers",
        json={
            **trigger_body(connection, build_token, build_command="", deploy_command=deploy),
            "external_script_id": tag,
        },
    ).json()["result"]
    build = api.post(f"/builds/triggers/{made['trigger_uuid']}/builds", json={"branch": "main"})
    build_uuid = build.json()["result"]["build_uuid"]
    deadline = time.monotonic() + 120
    while (got := api.get(f"/builds/builds/{build_uuid}").json()["result"])["status"] != "stopped":
        assert time.monotonic() < deadline, "the build did not stop in 120 s"
        time.sleep(0.2)
    lines = [
        text for _, text in api.get(f"/builds/builds/{build_uuid}/logs").json()["result"]["lines"]
    ]
    assert got["build_outcome"] == "success", "\n".join(lines)
    assert not any("script API" in line for line in lines)  # a fresh Worker: no warning
    printed = next(re.search(UUID, line)[0] for line in lines if "Current Version ID" in line)

    # The version wrangler made here, under the connected Worker's name and tag.
    deployed = api.get("/workers/scripts/my-worker/deployments").json()["result"]["deployments"]
    assert deployed[0]["versions"][0]["version_id"] == printed
    assert [s["id"] for s in api.get("/workers/scripts").json()["result"]] == ["my-worker"]
    found = api.get("/builds/builds", params={"version_ids": printed}).json()["result"]
    assert found["builds"][printed]["build_uuid"] == build_uuid
