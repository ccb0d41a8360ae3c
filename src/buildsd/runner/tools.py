"""A build's tools: those found on PATH, as Cloudflare's log line lists them, and the install
command a project's lockfile asks for."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

# (name in the log line, program, its version flag), in Cloudflare's order: package manager
# first, then the runtime (`npm@10.9.2, nodejs@22.16.0`).
PROGRAMS = (
    ("npm", "npm", "--version"),
    ("pnpm", "pnpm", "--version"),
    ("yarn", "yarn", "--version"),
    ("bun", "bun", "--version"),
    ("nodejs", "node", "--version"),
)
# Lockfile → install command, first match wins (spec §3.3's package managers).
INSTALLERS = (
    ("bun.lockb", ["bun", "install", "--frozen-lockfile"]),
    ("bun.lock", ["bun", "install", "--frozen-lockfile"]),
    ("pnpm-lock.yaml", ["pnpm", "install", "--frozen-lockfile"]),
    ("yarn.lock", ["yarn", "install", "--frozen-lockfile"]),
    ("package-lock.json", ["npm", "ci"]),
)
_VERSION = re.compile(r"v?(\d+(?:\.\d+)+)")
TIMEOUT_SECONDS = 10


@functools.lru_cache(maxsize=8)
def detected(path: str) -> tuple[str, ...]:
    """`name@version` of each program found on `path` (the build's PATH); a program that is
    absent, or answers no version in time, is left out rather than guessed. Asked once per
    PATH and process: the host's tools do not change between builds."""
    found = []
    for name, program, flag in PROGRAMS:
        where = shutil.which(program, path=path)
        if where is None:
            continue
        try:
            out = subprocess.run(
                [where, flag],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                env={"PATH": path, "HOME": "/nonexistent", "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0"},
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if match := _VERSION.search(out):
            found.append(f"{name}@{match.group(1)}")
    return tuple(found)


def installer(root: Path, env: dict[str, str]) -> list[str] | None:
    """The dependency install a project at `root` needs, or None (no package.json, or
    SKIP_DEPENDENCY_INSTALL set)."""
    if env.get("SKIP_DEPENDENCY_INSTALL") or not (root / "package.json").exists():
        return None
    for lockfile, argv in INSTALLERS:
        if (root / lockfile).exists():
            return argv
    return ["npm", "install"]
