"""From a signed delivery to a finished build: the runner clones the pushed commit and runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import World
from tests.gitrepo import make_repo
from tests.runner.conftest import log_lines, wait_for
from tests.webhooks.conftest import accepted, add_trigger, connect, deliver_github, worker_builds
from tests.webhooks.payloads import github_commit, github_pull_request, github_push

COMMANDS = {
    "build_command": "./build.sh",
    "deploy_command": "echo BRANCH:$WORKERS_CI_BRANCH SHA:$WORKERS_CI_COMMIT_SHA; cat out.txt",
}


def test_a_push_and_a_pull_request_build_and_run_to_success(
    hooks: Callable[..., World], tmp_path: Path
) -> None:
    git = make_repo(tmp_path)
    script = {"build.sh": "#!/bin/sh\necho built from $WORKERS_CI_BRANCH > out.txt\n"}
    pushed = git.commit(script, "Add a build script")
    world = hooks(
        runner_slots=2,
        git_url_github=f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git",
    )
    add_trigger(world, connect(world), branch_includes=["main", "feature/*"], **COMMANDS)
    commit = github_commit("Add a build script", added=("build.sh",), modified=(), sha=pushed)
    accepted(deliver_github(world, github_push("main", [commit])))
    head = git.commit({"page.txt": "login\n"}, "Add a login page", branch="feature/login")
    pull_request = github_pull_request("opened", "feature/login", head)
    accepted(deliver_github(world, pull_request, "pull_request"))
    for build in worker_builds(world):
        done = wait_for(world, build["build_uuid"])
        lines = log_lines(world, build["build_uuid"])
        meta = done["build_trigger_metadata"]
        assert done["build_outcome"] == "success", lines
        assert f"BRANCH:{meta['branch']} SHA:{meta['commit_hash']}" in lines
        assert f"built from {meta['branch']}" in lines
    pr, push = sorted(worker_builds(world), key=lambda b: b["build_trigger_metadata"]["branch"])
    assert push["build_trigger_metadata"]["commit_hash"] == pushed
    assert push["build_trigger_metadata"]["commit_message"] == "Add a build script"
    assert push["build_trigger_metadata"]["author"] == "Ada Lovelace"
    assert push["build_trigger_metadata"]["build_trigger_source"] == "push_event"
    assert pr["build_trigger_metadata"]["commit_hash"] == head
    assert pr["build_trigger_metadata"]["build_trigger_source"] == "pull_request"
    assert pr["pull_request"]["pull_request_url"].endswith("/pull/42")
