"""The runner's less travelled paths, each through a real build: a deleted connection (D6), a
provider with no clone URL, dependency install by lockfile, the cache trim, an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.flows import base, build, ok
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for


def test_a_trigger_whose_connection_was_deleted_fails_its_build_and_says_why(
    runner_world, repo: Repo
) -> None:
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="echo deployed")
    uuid = t["repo_connection"]["repo_connection_uuid"]
    ok(world.client.delete(base(world) + f"/repos/connections/{uuid}", headers=world.auth))
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "fail"
    assert any("repository connection of this trigger was deleted" in line for line in lines)
    assert "deployed" not in lines


def test_a_provider_without_a_clone_url_fails_the_build_naming_the_setting(
    runner_world, repo: Repo
) -> None:
    world = runner_world(git_url_github="")
    t = make_trigger(world, build_command="", deploy_command="echo deployed")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "fail"
    assert any("set BUILDSD_GIT_URL_GITHUB" in line for line in lines), lines


def test_dependencies_install_by_the_lockfile_found(runner_world, repo: Repo) -> None:
    """package-lock.json → `npm ci` (which runs the package's own postinstall script), before
    the build command; SKIP_DEPENDENCY_INSTALL skips it."""
    package = {"name": "site", "version": "1.0.0", "scripts": {"postinstall": "echo INSTALLED"}}
    lock = {
        "name": "site",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "site", "version": "1.0.0"}},
    }
    repo.commit({"package.json": json.dumps(package), "package-lock.json": json.dumps(lock)}, "npm")
    world = runner_world()
    t = make_trigger(world, build_command="echo BUILT", deploy_command="true")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"], timeout=120)
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "success", "\n".join(lines)
    wanted = "Installing project dependencies: npm ci"
    installing = [n for n, line in enumerate(lines) if line == wanted]
    assert installing and installing[0] < lines.index("INSTALLED") < lines.index("BUILT")
    assert not [line for line in lines if "Unknown env config" in line], lines

    ok(
        world.client.patch(
            base(world) + f"/triggers/{t['trigger_uuid']}/environment_variables",
            headers=world.auth,
            json={"SKIP_DEPENDENCY_INSTALL": {"value": "1", "is_secret": False}},
        )
    )
    skipped = build(world, t["trigger_uuid"])
    done = wait_for(world, skipped["build_uuid"], timeout=120)
    lines = log_lines(world, skipped["build_uuid"])
    assert done["build_outcome"] == "success"
    assert "BUILT" in lines and "INSTALLED" not in lines
    assert not [line for line in lines if line.startswith("Installing project dependencies")]


@pytest.mark.parametrize(("limit", "kept"), [(1024, False), (1024 * 1024, True)])
def test_a_cache_is_kept_for_the_next_build_within_its_limit_and_emptied_past_it(
    runner_world, repo: Repo, limit: int, kept: bool
) -> None:
    world = runner_world(build_cache_max_bytes=limit)
    t = make_trigger(
        world,
        build_command="ls $npm_config_cache | sed 's/^/CACHED:/'",
        deploy_command="head -c 4096 /dev/zero > $npm_config_cache/big",
    )
    first = build(world, t["trigger_uuid"])
    assert wait_for(world, first["build_uuid"])["build_outcome"] == "success"
    second = build(world, t["trigger_uuid"])
    assert wait_for(world, second["build_uuid"])["build_outcome"] == "success"
    assert ("CACHED:big" in log_lines(world, second["build_uuid"])) is kept


def test_an_error_inside_the_runner_fails_the_build_with_a_line_not_a_stuck_build(
    runner_world, repo: Repo, tmp_path: Path
) -> None:
    """Where the workspaces go is a file, not a folder: the runner cannot make the build's
    workspace. The build ends `fail` with a line naming an internal error; the runner lives on."""
    world = runner_world()
    t = make_trigger(world, build_command="", deploy_command="echo deployed")
    builds_dir = Path(world.services.settings.data_path) / "builds"
    if builds_dir.exists():
        builds_dir.rmdir()
    builds_dir.write_text("not a folder")
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "fail"
    assert any(line.startswith("Failed: internal error in the runner") for line in lines), lines
    builds_dir.unlink()
    again = build(world, t["trigger_uuid"])
    assert wait_for(world, again["build_uuid"])["build_outcome"] == "success"
