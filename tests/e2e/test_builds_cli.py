"""`buildsd builds …` and `buildsd webhooks send` against a real server: in-process through
click's CliRunner, once as a subprocess, and a `git push` to a bare repository whose
post-receive hook sends the push."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from buildsd.cli import main
from tests.conftest import ACCOUNT, TOKEN
from tests.e2e.conftest import BUILDSD
from tests.e2e.proxy import CuttableProxy
from tests.gitrepo import GIT_ENV, make_repo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
TAG = "dd7160bb9cef458093557736f4b9e75b"
SECRET = "cli-webhook-secret"


def result(response: httpx.Response):
    assert response.status_code == 200, response.text
    return response.json()["result"]


def setup(api: httpx.Client, build_command: str) -> str:
    conn = result(
        api.put(
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
        api.post(
            "/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": "x" * 40,
                "cloudflare_token_id": "y",
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
                "build_command": build_command,
                "deploy_command": "true",
            },
        )
    )
    return str(trigger["trigger_uuid"])


def stored_lines(api: httpx.Client, build_uuid: str) -> list[str]:
    lines, cursor = [], None
    while True:
        got = result(
            api.get(f"/builds/{build_uuid}/logs", params={"cursor": cursor} if cursor else {})
        )
        lines += [text for _, text in got["lines"]]
        cursor = got["cursor"]
        if not got["truncated"]:
            return lines


def wait_stopped(api: httpx.Client, build_uuid: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        build = result(api.get(f"/builds/{build_uuid}"))
        if build["status"] == "stopped":
            return build
        time.sleep(0.1)
    raise AssertionError(f"build {build_uuid} did not stop")


@pytest.fixture
def served(start_server, tmp_path: Path):
    repo = make_repo(tmp_path)
    git_url = f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    server = start_server(
        BUILDSD_RUNNER_SLOTS="2",
        BUILDSD_GIT_URL_GITHUB=git_url,
        BUILDSD_GITHUB_WEBHOOK_SECRET=SECRET,
    )
    api = httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{ACCOUNT}/builds",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    return server, api, repo


def invoke(url: str, *args: str):
    env = {"BUILDSD_URL": url, "BUILDSD_TOKEN": TOKEN}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_list_show_logs_cancel_retry(served) -> None:
    server, api, _ = served
    trigger_uuid = setup(api, "for i in $(seq 1 30); do echo n$i; done")
    first = result(api.post(f"/triggers/{trigger_uuid}/builds", json={"branch": "main"}))
    followed = invoke(server.url, "builds", "logs", first["build_uuid"], "--follow")
    assert followed.exit_code == 0, followed.output
    printed = followed.stdout.splitlines()
    assert printed == stored_lines(api, first["build_uuid"])
    assert [line for line in printed if line.startswith("n")] == [f"n{i}" for i in range(1, 31)]
    plain = invoke(server.url, "builds", "logs", first["build_uuid"])
    assert plain.stdout.splitlines() == printed
    as_json = invoke(server.url, "builds", "logs", first["build_uuid"], "--json")
    assert [json.loads(line)[1] for line in as_json.stdout.splitlines()] == printed

    listed = invoke(server.url, "builds", "list", "--worker", TAG, "--json")
    assert [b["build_uuid"] for b in json.loads(listed.stdout)] == [first["build_uuid"]]
    text = invoke(server.url, "builds", "list", "--worker", TAG).stdout
    assert first["build_uuid"] in text and "success" in text and "\x1b[" not in text  # piped
    shown = invoke(server.url, "builds", "show", first["build_uuid"])
    assert "state    success" in shown.stdout and "source   manual" in shown.stdout
    assert (
        json.loads(invoke(server.url, "builds", "show", first["build_uuid"], "--json").stdout)[
            "build_uuid"
        ]
        == first["build_uuid"]
    )

    retried = invoke(server.url, "builds", "retry", first["build_uuid"], "--json")
    again = json.loads(retried.stdout)
    assert again["build_uuid"] != first["build_uuid"]
    assert again["build_trigger_metadata"]["commit_hash"]  # the commit the first build ran
    cancelled = invoke(server.url, "builds", "cancel", again["build_uuid"])
    assert cancelled.exit_code == 0 and again["build_uuid"] in cancelled.stdout
    wait_stopped(api, again["build_uuid"])

    unknown = invoke(server.url, "builds", "show", "6f1c9e3e-1111-4222-8333-944455556666")
    assert unknown.exit_code == 1 and "12000" in unknown.output
    no_token = CliRunner().invoke(main, ["builds", "show", "x"], env={"BUILDSD_TOKEN": ""})
    assert no_token.exit_code == 2
    bad_url = invoke("file:///etc/passwd", "builds", "show", "x")
    assert bad_url.exit_code == 2
    # As a subprocess, once.
    env = {
        **os.environ,
        "BUILDSD_URL": server.url,
        "BUILDSD_TOKEN": TOKEN,
        "BUILDSD_ACCOUNT_ID": ACCOUNT,
    }
    done = subprocess.run(
        [*BUILDSD, "builds", "show", first["build_uuid"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "state    success" in done.stdout, done.stderr


def test_logs_follow_resumes_after_a_dropped_connection(served) -> None:
    server, api, _ = served
    trigger_uuid = setup(api, "for i in $(seq 1 60); do echo n$i; sleep 0.05; done")
    build = result(api.post(f"/triggers/{trigger_uuid}/builds", json={"branch": "main"}))
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    outcome: dict = {}

    def follow() -> None:
        outcome["result"] = invoke(
            f"http://127.0.0.1:{proxy.port}", "builds", "logs", build["build_uuid"], "-f"
        )

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not any(line == "n10" for line in stored_lines(api, build["build_uuid"])):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proxy.cut()
        thread.join(timeout=90)
    finally:
        proxy.close()
    printed = outcome["result"].stdout.splitlines()
    assert outcome["result"].exit_code == 0, outcome["result"].output
    assert proxy.accepted >= 2  # it reconnected
    assert printed == stored_lines(api, build["build_uuid"])  # none lost, none twice


def test_git_push_to_a_bare_repository_with_the_hook_builds(served, tmp_path: Path) -> None:
    server, api, repo = served
    setup(api, "echo pushed")
    hook = repo.bare / "hooks" / "post-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"export BUILDSD_URL={server.url} BUILDSD_WEBHOOK_SECRET={SECRET} BUILDSD_REPO_ID=1\n"
        f"exec {sys.executable} -m buildsd webhooks send --from-git . --stdin-refs "
        "--full-name octo-org/my-worker\n"
    )
    hook.chmod(0o755)
    sha = repo.commit({"src/index.ts": "export default {}\n"}, "Add the worker")
    deadline = time.monotonic() + 60
    while True:
        builds = result(api.get(f"/workers/{TAG}/builds"))
        if builds:
            break
        assert time.monotonic() < deadline, "no build from the push"
        time.sleep(0.1)
    meta = builds[0]["build_trigger_metadata"]
    assert meta["build_trigger_source"] == "push_event" and meta["commit_hash"] == sha
    assert meta["commit_message"] == "Add the worker" and meta["author"] == "Ada Lovelace"
    assert wait_stopped(api, builds[0]["build_uuid"])["build_outcome"] == "success"

    # The same command by hand, from the work tree: the last commit, sent again (deduplicated).
    sent = CliRunner().invoke(
        main,
        [
            "webhooks",
            "send",
            "--from-git",
            str(repo.work),
            "--repo-id",
            "1",
            "--url",
            server.url,
            "--secret",
            SECRET,
            "--full-name",
            "octo-org/my-worker",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["success"] is True
    wrong = CliRunner().invoke(
        main,
        [
            "webhooks",
            "send",
            "--from-git",
            str(repo.work),
            "--repo-id",
            "1",
            "--url",
            server.url,
            "--secret",
            "wrong",
        ],
    )
    assert wrong.exit_code == 1 and "401" in wrong.output
    subprocess.run(
        ["git", "-C", str(repo.work), "mv", "src/index.ts", "src/main.ts"], env=GIT_ENV, check=True
    )
    subprocess.run(
        ["git", "-C", str(repo.work), "commit", "-qm", "rename"], env=GIT_ENV, check=True
    )
    moved = CliRunner().invoke(
        main,
        [
            "webhooks",
            "send",
            "--from-git",
            str(repo.work),
            "--repo-id",
            "1",
            "--url",
            server.url,
            "--secret",
            SECRET,
            "--full-name",
            "octo-org/my-worker",
        ],
        catch_exceptions=False,
    )
    assert moved.exit_code == 0 and "refs/heads/main" in moved.stdout


def test_errors_say_what_went_wrong(served, tmp_path: Path) -> None:
    server, _, repo = served
    nowhere = "http://127.0.0.1:1"
    unreachable = invoke(nowhere, "builds", "--account", ACCOUNT, "show", "x")
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output
    unknown = invoke(server.url, "builds", "logs", "6f1c9e3e-1111-4222-8333-944455556666", "-f")
    assert unknown.exit_code == 1 and "404" in unknown.output
    no_worker = invoke(server.url, "builds", "list", "--worker", "no-such-worker")
    assert no_worker.exit_code == 1 and "10007" in no_worker.output
    send = ["webhooks", "send", "--repo-id", "1", "--secret", SECRET, "--url", server.url]
    not_git = CliRunner().invoke(main, [*send, "--from-git", str(tmp_path / "data")])
    assert not_git.exit_code == 1 and "git " in not_git.output
    gone = CliRunner().invoke(main, [*send, "--from-git", str(repo.work), "--after", "0" * 40])
    assert gone.exit_code == 0, gone.output
    new_branch = CliRunner().invoke(
        main, [*send, "--from-git", str(repo.work), "--before", "0" * 40]
    )
    assert new_branch.exit_code == 0, new_branch.output
    away = CliRunner().invoke(main, [*send[:-1], nowhere, "--from-git", str(repo.work)])
    assert away.exit_code == 1 and "cannot reach" in away.output
