"""Branch and path patterns as Workers Builds reads them: `*` is any run of characters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def matches(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None


def branch_builds(branch: str, includes: list[str], excludes: list[str]) -> bool:
    """Excludes win; otherwise any include must match."""
    if any(matches(pattern, branch) for pattern in excludes):
        return False
    return any(matches(pattern, branch) for pattern in includes)


def some_branch_builds(includes: list[str], excludes: list[str]) -> bool:
    """Can any branch at all start a build? False for [] or excludes covering every include.

    Decided by witnesses: each include with its `*`s filled in a few ways; if one of them is
    matched by no exclude, some branch builds. Exact for the patterns people write (`main`,
    `release/*`, `*`); a contrived pair could be judged unmatchable when it is not.
    """
    for pattern in includes:
        for fill in ("", "x", "buildsd-any/branch.1"):
            witness = pattern.replace("*", fill)
            if witness and branch_builds(witness, [pattern], excludes):
                return True
    return False


# Workers Builds builds such pushes whatever their paths (spec §10): GitHub and GitLab cap the
# commits and files a push payload lists, so past these sizes the file list cannot be trusted.
MAX_CHANGED_FILES = 3000
MAX_COMMITS = 20


class Verdict(NamedTuple):
    """Whether a trigger builds a change, the rule that decided, and the pattern it used."""

    builds: bool
    rule: str  # branch_excludes | branch_includes | path_excludes | path_includes | bypass_*
    pattern: str | None
    reason: str


def paths_verdict(
    changed: Sequence[str], commit_count: int, includes: list[str], excludes: list[str]
) -> Verdict:
    """Drop the paths excludes match, then build if an include matches a remaining path."""
    if not changed:
        return Verdict(True, "bypass_no_changed_files", None, "bypass: no changed files listed")
    if len(changed) >= MAX_CHANGED_FILES:
        reason = f"bypass: {len(changed)} changed files (≥ {MAX_CHANGED_FILES})"
        return Verdict(True, "bypass_many_files", None, reason)
    if commit_count >= MAX_COMMITS:
        reason = f"bypass: {commit_count} commits (≥ {MAX_COMMITS})"
        return Verdict(True, "bypass_many_commits", None, reason)
    remaining = [path for path in changed if not any(matches(p, path) for p in excludes)]
    if not remaining:
        reason = "every changed file matches path_excludes"
        return Verdict(False, "path_excludes", None, reason)
    for pattern in includes:
        for path in remaining:
            if matches(pattern, path):
                reason = f"{path!r} matches path_includes pattern {pattern!r}"
                return Verdict(True, "path_includes", pattern, reason)
    return Verdict(False, "path_includes", None, "no changed file matches path_includes")


def verdict(
    branch: str,
    changed: Sequence[str],
    commit_count: int,
    *,
    branch_includes: list[str],
    branch_excludes: list[str],
    path_includes: list[str],
    path_excludes: list[str],
) -> Verdict:
    """Branch patterns first (excludes win), then path filters: one rule for every push."""
    for pattern in branch_excludes:
        if matches(pattern, branch):
            reason = f"branch {branch!r} matches branch_excludes pattern {pattern!r}"
            return Verdict(False, "branch_excludes", pattern, reason)
    if not any(matches(pattern, branch) for pattern in branch_includes):
        reason = f"branch {branch!r} matches no branch_includes pattern"
        return Verdict(False, "branch_includes", None, reason)
    return paths_verdict(changed, commit_count, path_includes, path_excludes)
