""".ci/floor-check: the coverage floor only moves up, in full, shallow, fresh or no history."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.gitrepo import GIT_ENV, Repo, make_repo

CHECK = Path(__file__).parent.parent / ".ci" / "floor-check"
FLOOR = ".ci/coverage-floor"


def check(checkout: Path) -> subprocess.CompletedProcess[str]:
    # The ceiling: a checkout that is no repository must not find one further up.
    env = {**GIT_ENV, "GIT_CEILING_DIRECTORIES": str(checkout.parent)}
    return subprocess.run(
        [str(CHECK), str(checkout)], env=env, capture_output=True, text=True, timeout=60
    )


def history(tmp_path: Path, *floors: str) -> Repo:
    """A repository whose commits set the floor to each value in turn."""
    repo = make_repo(tmp_path)
    for floor in floors:
        repo.commit({FLOOR: floor + "\n"}, f"floor {floor}")
    return repo


def test_a_floor_below_an_earlier_one_fails_and_one_at_or_above_passes(tmp_path: Path) -> None:
    repo = history(tmp_path, "90.0", "93.5")
    assert check(repo.work).returncode == 0

    repo.commit({FLOOR: "91.0\n"}, "floor lowered")
    done = check(repo.work)
    assert done.returncode == 1
    assert "below the 93.5 it once was" in done.stderr

    (repo.work / FLOOR).write_text("92.0\n")  # not committed: still below
    assert check(repo.work).returncode == 1
    (repo.work / FLOOR).write_text("93.5\n")
    assert check(repo.work).returncode == 0


def test_a_shallow_clone_reads_the_whole_history(tmp_path: Path) -> None:
    repo = history(tmp_path, "95.0", "93.0")  # lowered in the newest commit
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.bare}", str(shallow)],
        env=GIT_ENV,
        check=True,
    )
    done = check(shallow)  # one commit alone says 93.0, which is no lower than itself
    assert done.returncode == 1, done.stderr
    assert "below the 95.0 it once was" in done.stderr


def test_a_shallow_clone_that_cannot_be_deepened_fails_saying_so(tmp_path: Path) -> None:
    repo = history(tmp_path, "95.0", "93.0")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.bare}", str(shallow)],
        env=GIT_ENV,
        check=True,
    )
    shutil.rmtree(repo.bare)
    done = check(shallow)
    assert done.returncode == 1
    assert "shallow and cannot be deepened" in done.stderr


def test_no_commits_or_no_repository_is_not_checked_and_says_so(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    (fresh / ".ci").mkdir(parents=True)
    (fresh / FLOOR).write_text("93.0\n")
    unpacked = tmp_path / "unpacked"
    shutil.copytree(fresh, unpacked)
    subprocess.run(["git", "init", "-q", str(fresh)], env=GIT_ENV, check=True)

    for checkout in (fresh, unpacked):
        done = check(checkout)
        assert done.returncode == 0, done.stderr
        assert "no git history here" in done.stderr
