"""A clone from a public forge that fails says which BUILDSD_GIT_URL_* to set (issue 14)."""

from __future__ import annotations

from buildsd import git
from tests.api.flows import build
from tests.runner.conftest import log_lines, make_trigger, wait_for


def test_a_failed_clone_from_github_names_the_setting(runner_world) -> None:  # type: ignore[no-untyped-def]
    # Offline here (no DNS); with a network the repository does not exist: a failure either way.
    world = runner_world(
        git_url_github="https://github.com/{provider_account_name}/{repo_name}.git",
        git_timeout_seconds=20,
    )
    queued = build(world, make_trigger(world)["trigger_uuid"], branch="main")
    done = wait_for(world, queued["build_uuid"])
    lines = log_lines(world, queued["build_uuid"])
    assert done["build_outcome"] == "fail"
    assert any("set BUILDSD_GIT_URL_GITHUB" in line for line in lines), lines


def test_the_hint_is_only_for_public_forges() -> None:
    assert git.unreachable_hint("file:///srv/git/o/r.git", "github") is None
    hint = git.unreachable_hint("https://gitlab.com/o/r.git", "gitlab")
    assert hint is not None and "BUILDSD_GIT_URL_GITLAB " in hint
