"""Real builds: clone a file:// repository, run the commands, record what happened."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

from buildsd.runner import phases, tools
from tests.api.flows import (
    BUILD_TOKEN_SECRET,
    base,
    build,
    build_token,
    connection,
    ok,
    trigger_body,
)
from tests.conftest import KNOWN_SECRETS
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for

SECRET = "s3cr3t-value-that-must-never-leak"
VERSION = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def test_a_build_runs_to_success_with_variables_and_metadata(runner_world, repo: Repo) -> None:
    sha = repo.commit({"build.sh": "#!/bin/sh\necho built > out.txt\n"}, "Add a build script")
    world = runner_world()
    t = make_trigger(
        world,
        build_command="./build.sh && echo BUILD:$NODE_ENV:$CI:$WORKERS_CI:$WORKERS_CI_BRANCH",
        deploy_command=(
            "cat out.txt; echo SHA:$WORKERS_CI_COMMIT_SHA; echo ACCOUNT:$CLOUDFLARE_ACCOUNT_ID; "
            f"echo 'Current Version ID: {VERSION}'; "
            "echo 'Version Preview URL: https://abc-my-worker.example.workers.dev'"
        ),
    )
    ok(
        world.client.patch(
            base(world) + f"/triggers/{t['trigger_uuid']}/environment_variables",
            headers=world.auth,
            json={"NODE_ENV": {"value": "production", "is_secret": False}},
        )
    )
    queued = build(world, t["trigger_uuid"], branch="main")
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "success", lines
    assert done["initializing_on"] and done["running_on"] and done["stopped_on"]
    assert done["initializing_on"] <= done["running_on"] <= done["stopped_on"]
    assert "BUILD:production:true:1:main" in lines
    assert "built" in lines and f"SHA:{sha}" in lines and f"ACCOUNT:{world.account}" in lines
    meta = done["build_trigger_metadata"]
    assert meta["commit_hash"] == sha
    assert meta["commit_message"] == "Add a build script" and meta["author"] == "Ada Lovelace"
    assert done["preview_url"] == "https://abc-my-worker.example.workers.dev"
    by_version = ok(
        world.client.get(
            base(world) + "/builds", params={"version_ids": VERSION}, headers=world.auth
        )
    )
    assert by_version["builds"][VERSION]["build_uuid"] == queued["build_uuid"]
    logs = ok(
        world.client.get(base(world) + f"/builds/{queued['build_uuid']}/logs", headers=world.auth)
    )
    assert [e["type"] for e in logs["events"]] == list(phases.EVENT_TYPES)
    assert all(e["started_on"] and e["ended_on"] for e in logs["events"])
    # Cloudflare's phase lines, in its order, with buildsd's own lines between them.
    expected = [
        phases.INITIALIZING_LINE,
        phases.INITIALIZED_LINE,
        phases.CLONING_LINE,
        phases.build_line(t["build_command"]),
        phases.BUILD_DONE_LINE,
        phases.deploy_line(t["deploy_command"]),
        phases.DEPLOY_DONE_LINE,
    ]
    at = [lines.index(line) for line in expected]
    assert at == sorted(at), lines
    detected = [line for line in lines if line.startswith("Detected the following tools")]
    assert len(detected) <= 1 and all("@" in line for line in detected)


def test_a_failing_deploy_logs_cloudflares_failure_line_then_the_reason(
    runner_world, repo: Repo
) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="echo deploying; exit 7")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "fail"
    assert phases.NO_BUILD_COMMAND_LINE in lines
    failed = lines.index("Failed: error occurred while running deploy command")
    assert lines[failed + 1] == "Failed: deploy command exited with code 7"
    assert phases.DEPLOY_DONE_LINE not in lines
    logs = ok(
        world.client.get(base(world) + f"/builds/{queued['build_uuid']}/logs", headers=world.auth)
    )
    assert [e["type"] for e in logs["events"]] == list(phases.EVENT_TYPES)


def test_tools_are_named_with_their_versions_and_absent_ones_left_out(tmp_path) -> None:
    fake = tmp_path / "npm"
    fake.write_text("#!/bin/sh\necho 10.9.2\n")
    fake.chmod(0o755)
    mute = tmp_path / "node"
    mute.write_text("#!/bin/sh\necho no version here\n")
    mute.chmod(0o755)
    broken = tmp_path / "pnpm"  # not a program at all: exec fails, the tool is left out
    broken.write_bytes(b"\x00\x01\x02")
    broken.chmod(0o755)
    assert tools.detected(str(tmp_path)) == ("npm@10.9.2",)


def test_a_pinned_older_commit_is_built_exactly(runner_world, repo: Repo) -> None:
    old = repo.commit({"version.txt": "one\n"}, "One")
    repo.commit({"version.txt": "two\n"}, "Two")
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="cat version.txt")
    queued = build(world, t["trigger_uuid"], branch="main", commit_hash=old)
    done = wait_for(world, queued["build_uuid"])
    assert done["build_outcome"] == "success"
    assert "one" in log_lines(world, queued["build_uuid"])
    assert done["build_trigger_metadata"]["commit_hash"] == old
    assert done["build_trigger_metadata"]["commit_message"] == "One"


def test_root_directory(runner_world, repo: Repo) -> None:
    repo.commit({"apps/site/marker.txt": "in the site\n"}, "Site")
    world = runner_world()
    t = make_trigger(
        world, root_directory="/apps/site", build_command="pwd", deploy_command="cat marker.txt"
    )
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "success"
    assert "in the site" in lines and any(line.endswith("/repo/apps/site") for line in lines)


def test_a_failing_command_fails_the_build_with_its_exit_code(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="echo about to fail; exit 3", deploy_command="echo never")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "fail"
    assert "Failed: build command exited with code 3" in lines
    assert lines.index("Failed: error occurred while running build command") == (
        lines.index("Failed: build command exited with code 3") - 1
    )
    assert "never" not in lines


def test_an_unknown_branch_fails_at_clone(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="true")
    queued = build(world, t["trigger_uuid"], branch="does-not-exist")
    assert wait_for(world, queued["build_uuid"])["build_outcome"] == "fail"
    assert "Failed: git clone exited with code 128" in log_lines(world, queued["build_uuid"])


def test_owner_slash_repo_builds_that_owners_repository(runner_world, repo: Repo) -> None:
    """repo_name "octo-org/my-worker" is my-worker of octo-org, not octo-org/octo-org/…"""
    world = runner_world()
    body = trigger_body(
        connection(world, repo_name="octo-org/my-worker"),
        build_token(world),
        build_command="",
        deploy_command="true",
    )
    t = ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth))
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "success", lines
    assert any(line.endswith("/git/octo-org/my-worker.git") for line in lines), lines


def test_a_stored_name_leaving_the_template_fails_the_build(runner_world, repo: Repo) -> None:
    """A row stored before names were checked at the PUT: the build fails, saying why."""
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="true")

    async def store() -> None:
        async with world.services.db.transaction() as conn:
            await conn.run("UPDATE repo_connections SET repo_name = '../../etc/x'")

    world.run(store())
    queued = build(world, t["trigger_uuid"])
    assert wait_for(world, queued["build_uuid"])["build_outcome"] == "fail"
    lines = log_lines(world, queued["build_uuid"])
    assert not any(line.startswith("Cloning") for line in lines), lines
    assert any(
        line.startswith("Failed: repo_name '../../etc/x' cannot be one segment of a clone URL")
        for line in lines
    ), lines


def test_a_deleted_build_token_fails_with_cloudflares_line(runner_world, repo: Repo) -> None:
    world = runner_world(runner_slots=0)
    t = make_trigger(world, build_command="", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    ok(world.client.delete(base(world) + f"/tokens/{t['build_token_uuid']}", headers=world.auth))
    runner = runner_world()
    assert wait_for(runner, queued["build_uuid"])["build_outcome"] == "fail"
    lines = log_lines(runner, queued["build_uuid"])
    assert any(
        "build token selected for this build has been deleted or rolled" in line for line in lines
    )


def test_every_form_of_a_secret_is_masked(runner_world, repo: Repo) -> None:
    world = runner_world()
    value = SECRET + '/&"x'
    KNOWN_SECRETS.add(value)
    forms = [
        value,
        base64.b64encode(value.encode()).decode(),
        base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
        quote(value, safe=""),
        json.dumps(value)[1:-1],
        value.encode().hex(),
        value.encode().hex().upper(),
        BUILD_TOKEN_SECRET,
    ]
    printer = (
        "import base64, json, os, urllib.parse as u; v = os.environ['API_KEY']; "
        "print('plain=' + v); print('b64=' + base64.b64encode(v.encode()).decode()); "
        "print('b64url=' + base64.urlsafe_b64encode(v.encode()).decode().rstrip('=')); "
        "print('url=' + u.quote(v, safe='')); print('json=' + json.dumps(v)); "
        "print('hex=' + v.encode().hex()); print('HEX=' + v.encode().hex().upper()); "
        "print('token=' + os.environ['CLOUDFLARE_API_TOKEN'])"
    )
    t = make_trigger(world, build_command=f'python3 -c "{printer}"', deploy_command="true")
    ok(
        world.client.patch(
            base(world) + f"/triggers/{t['trigger_uuid']}/environment_variables",
            headers=world.auth,
            json={"API_KEY": {"value": value, "is_secret": True}},
        )
    )
    queued = build(world, t["trigger_uuid"])
    assert wait_for(world, queued["build_uuid"])["build_outcome"] == "success"
    text = "\n".join(log_lines(world, queued["build_uuid"]))
    for form in forms:
        assert form not in text
    for name in ("plain", "b64", "b64url", "url", "hex", "HEX", "token"):
        assert f"{name}=********" in text
    assert 'json="********"' in text


def test_logs_page_by_cursor_while_the_build_runs(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(
        world,
        build_command="for i in $(seq 1 3000); do echo line $i; done; sleep 2",
        deploy_command="echo end",
    )
    queued = build(world, t["trigger_uuid"])
    url = base(world) + f"/builds/{queued['build_uuid']}/logs"
    seen: list[str] = []
    cursor = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        params = {"cursor": cursor} if cursor else {}
        page = ok(world.client.get(url, params=params, headers=world.auth))
        seen += [text for _, text in page["lines"]]
        cursor = page["cursor"]
        status = ok(
            world.client.get(base(world) + f"/builds/{queued['build_uuid']}", headers=world.auth)
        )["status"]
        if status == "stopped" and not page["truncated"]:
            page = ok(world.client.get(url, params={"cursor": cursor}, headers=world.auth))
            seen += [text for _, text in page["lines"]]
            cursor = page["cursor"]  # else the next round reads these lines again
            if not page["lines"]:
                break
        time.sleep(0.05)
    numbered = [line for line in seen if line.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(1, 3001)]
    assert seen == log_lines(world, queued["build_uuid"])


def test_cache_is_kept_between_builds_and_purged(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(
        world,
        build_command='echo cached > "$npm_config_cache/blob"',
        deploy_command='cat "$npm_config_cache/blob"',
    )
    first = build(world, t["trigger_uuid"])
    assert wait_for(world, first["build_uuid"])["build_outcome"] == "success"
    cache = world.services.triggers.cache_dir(t["trigger_uuid"])
    assert (cache / "npm" / "blob").read_text() == "cached\n"
    ok(
        world.client.post(
            base(world) + f"/triggers/{t['trigger_uuid']}/purge_build_cache", headers=world.auth
        )
    )
    assert not cache.exists()
    uncached = make_trigger(
        world,
        build_caching_enabled=False,
        trigger_name="no cache",
        build_command='test -z "$npm_config_cache"',
        deploy_command="true",
    )
    second = build(world, uncached["trigger_uuid"])
    assert wait_for(world, second["build_uuid"])["build_outcome"] == "success"


def test_the_workspace_is_removed(runner_world, repo: Repo) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    wait_for(world, queued["build_uuid"])
    assert not (Path(world.services.settings.data_dir) / "builds" / queued["build_uuid"]).exists()


def test_commands_do_not_see_the_servers_environment(runner_world, repo: Repo) -> None:
    os.environ["BUILDSD_SHOULD_NOT_LEAK"] = "1"
    try:
        world = runner_world()
        t = make_trigger(world, build_command="env | sort", deploy_command="true")
        queued = build(world, t["trigger_uuid"])
        wait_for(world, queued["build_uuid"])
        assert not [line for line in log_lines(world, queued["build_uuid"]) if "BUILDSD" in line]
    finally:
        del os.environ["BUILDSD_SHOULD_NOT_LEAK"]


def test_a_relative_data_dir_works(runner_world, repo: Repo, tmp_path, monkeypatch) -> None:
    """The default data dir is ./.buildsd: commands and git run in other directories."""
    monkeypatch.chdir(tmp_path)
    world = runner_world(data_dir=".buildsd-relative")
    t = make_trigger(world, build_command="test -f README.md", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    assert done["build_outcome"] == "success", log_lines(world, queued["build_uuid"])


def test_a_nul_byte_in_the_output_is_stored(runner_world, repo: Repo) -> None:
    """PostgreSQL text holds no NUL: the line keeps U+FFFD in its place, the build goes on."""
    world = runner_world()
    t = make_trigger(world, build_command="printf 'a\\000b\\n'", deploy_command="echo after")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "success", lines
    assert "a\ufffdb" in lines and "after" in lines
