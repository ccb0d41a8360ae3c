"""Config autofill (spec §3.3): a shallow clone of a connected repository's branch, read once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from pathlib import Path

from buildsd import git
from buildsd.config import Settings
from buildsd.db import Database
from buildsd.errors import NotFound
from buildsd.services import wrangler_config
from buildsd.services.grants import Grants
from buildsd.services.sandboxing import Confinement
from buildsd.store import accounts
from buildsd.wire import ConfigAutofill as ConfigAutofillResult

log = logging.getLogger("buildsd.autofill")

# A config or package.json bigger than this is not read (it is not a real one).
MAX_FILE_BYTES = 1024 * 1024
MAX_STDERR_CHARS = 500


class ConfigAutofill:
    """Proposes build settings from what a branch of a connected repository contains."""

    def __init__(
        self, db: Database, settings: Settings, grants: Grants, sandbox: Confinement
    ) -> None:
        self._db = db
        self._settings = settings
        self._grants = grants
        self._sandbox = sandbox

    async def get(
        self,
        account_id: str,
        provider_type: str,
        provider_account_id: str,
        repo_id: str,
        branch: str,
        root_directory: str,
    ) -> ConfigAutofillResult:
        """404 12000 when the repository is neither connected here (inside the grants) nor
        listed in a grant (D21), cannot be cloned at `branch`, or has no Wrangler config at
        `root_directory` (which must lie inside the repository)."""
        async with self._db.connection() as conn:
            row = await self._grants.repository(
                conn, account_id, provider_type, provider_account_id, repo_id
            )
            # Counted only when it matters: bubblewrap does not work here.
            several = await accounts.several(conn) if self._unconfined() else False
        if row is None:
            raise NotFound()
        if refusal := self._sandbox.refusal(several):
            log.error("config autofill: %s", refusal.removeprefix("Failed: "))
            raise NotFound()
        try:
            url = git.clone_url(self._settings, row)
        except git.CloneURLError as exc:
            log.warning("config autofill: %s", exc)
            raise NotFound() from exc
        scratch = await asyncio.to_thread(_scratch_dir, self._settings.data_path / "tmp")
        if problem := self._sandbox.unreachable(Path(scratch.name).parent):
            await asyncio.to_thread(scratch.cleanup)
            log.error("config autofill: %s", problem)
            raise NotFound()
        try:
            repo = Path(scratch.name) / "repo"
            cloned = await self._clone(url, Path(scratch.name), branch)
            found = await asyncio.to_thread(_inspect, repo, root_directory) if cloned else None
        finally:
            await asyncio.to_thread(scratch.cleanup)
        if found is None:
            raise NotFound()
        return found

    def _unconfined(self) -> bool:
        return self._sandbox.mode() == "unavailable"

    async def _clone(self, url: str, scratch: Path, branch: str) -> bool:
        """`git clone --depth 1 --branch=<branch>` into `scratch`/repo, in the build sandbox,
        within BUILDSD_GIT_TIMEOUT_SECONDS."""
        argv, home = self._sandbox.clone_command(url, scratch, branch)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": home,  # not the server's: no one's global git config or credentials
            "LANG": "C.UTF-8",
            **git.GIT_ENV,
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd="/",  # in the sandbox, the build uid may not enter the server's directory
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout stops its helpers too
            )
        except ValueError:  # a NUL byte in the branch name
            return False
        except OSError as exc:
            log.error("config autofill: cannot run git: %s", exc)
            return False
        try:
            _, stderr = await asyncio.wait_for(
                process.communicate(), self._settings.git_timeout_seconds
            )
        except TimeoutError:
            log.warning(
                "config autofill: cloning %s took longer than %d s",
                git.redact(url),
                self._settings.git_timeout_seconds,
            )
            return False
        finally:
            if process.returncode is None:  # timed out, or the request went away
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if process.returncode != 0:
            detail = git.redact(stderr.decode(errors="replace").strip())[:MAX_STDERR_CHARS]
            log.info("config autofill: cannot clone %s at %r: %s", git.redact(url), branch, detail)
            return False
        return True


def _scratch_dir(parent: Path) -> tempfile.TemporaryDirectory[str]:
    parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=parent, prefix="autofill-")


def _inspect(repo: Path, root_directory: str) -> ConfigAutofillResult | None:
    """What the work tree holds at `root_directory`; None without a Wrangler config there."""
    try:
        top = repo.resolve()
        root = (top / root_directory.strip().lstrip("/")).resolve()
        if not root.is_relative_to(top) or not root.is_dir():
            return None
        # Only regular files inside the repository count: a symlink to elsewhere is not read.
        files = {entry.name: entry for entry in root.iterdir() if _inside(entry, top)}
        config_file = wrangler_config.config_file(files)
        if config_file is None:
            return None
        raw = _read(files[config_file])
        package = _read(files["package.json"]) if "package.json" in files else None
    except (OSError, ValueError):  # ValueError: a NUL byte in root_directory
        return None
    config = wrangler_config.parse_config(config_file, raw) if raw is not None else None
    name, envs = wrangler_config.worker_names(config)
    return ConfigAutofillResult(
        config_file=config_file,
        default_worker_name=name,
        env_worker_names=envs,
        package_manager=wrangler_config.package_manager(files),
        scripts=wrangler_config.scripts(package),
    )


def _inside(path: Path, top: Path) -> bool:
    resolved = path.resolve()
    return resolved.is_relative_to(top) and resolved.is_file()


def _read(path: Path) -> bytes | None:
    if path.stat().st_size > MAX_FILE_BYTES:
        return None
    return path.read_bytes()
