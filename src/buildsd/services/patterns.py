"""Branch and path patterns as Workers Builds reads them: `*` is any run of characters."""

from __future__ import annotations

import re
from functools import lru_cache


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
