"""One build, start to finish: clone → install → build → deploy, logs masked as they are made."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import stat
import time
from pathlib import Path

from buildsd import git
from buildsd.config import Settings
from buildsd.runner import executor, phases, tools
from buildsd.runner.masking import Masker
from buildsd.runner.sandbox import CACHE, HOME, TMP, Bind, Sandbox, entries_under
from buildsd.services.runs import Job, LeaseLost, Runs

log = logging.getLogger("buildsd.runner")

DELETED_CREDENTIAL_LINE = (
    "Failed: The build token selected for this build has been deleted or rolled and cannot be "
    "used for this build. Please update your build token in the Worker Builds settings and "
    "retry the build."
)
VERSION_ID = re.compile(r"Current Version ID:\s*([0-9a-fA-F-]{36})")
PREVIEW_URL = re.compile(r"(?:Version )?Preview URL:\s*(https?://\S+)")
# Each package manager's cache, kept per trigger. pnpm's store goes under PNPM_HOME (its store
# is `$PNPM_HOME/store`): as `npm_config_store_dir` it made every npm warn of an unknown config.
CACHE_ENV = {
    "npm_config_cache": "npm",
    "YARN_CACHE_FOLDER": "yarn",
    "PNPM_HOME": "pnpm",
    "BUN_INSTALL_CACHE_DIR": "bun",
}
# Where the clone step leaves `git log -1` of the commit, in the workspace's tmp/.
DESCRIBED = ".buildsd-commit"
MAX_DESCRIBED_BYTES = 64 * 1024
FLUSH_SECONDS = 0.1
FLUSH_LINES = 2000


class Stopped(Exception):
    """The build was cancelled, timed out, or taken away; `outcome` says which."""

    def __init__(self, outcome: str | None, message: str) -> None:
        self.outcome = outcome  # None: not ours to finish (cancelled via API, or lease lost)
        super().__init__(message)


class LogWriter:
    """Numbers, masks and batches lines; a flusher stores them every 100 ms."""

    def __init__(self, runs: Runs, build_uuid: str, masker: Masker, first_seq: int) -> None:
        self._runs = runs
        self._build_uuid = build_uuid
        self._mask = masker
        self._seq = first_seq
        self._pending: list[tuple[int, int, str]] = []
        self.watchers: list[re.Pattern[str]] = []
        self.seen: dict[str, str] = {}
        self.lost = False

    def line(self, text: str) -> None:
        masked = self._mask(text)
        self._pending.append((self._seq, time.time_ns() // 1_000_000, masked))
        self._seq += 1
        for pattern in self.watchers:
            if match := pattern.search(masked):
                self.seen[pattern.pattern] = match.group(1)

    async def flush(self) -> None:
        while self._pending and not self.lost:
            batch, self._pending = self._pending[:FLUSH_LINES], self._pending[FLUSH_LINES:]
            try:
                await self._runs.append_lines(self._build_uuid, batch)
            except LeaseLost:
                self.lost = True
                self._pending = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FLUSH_SECONDS)
            await self.flush()


class BuildRun:
    def __init__(
        self, job: Job, runs: Runs, settings: Settings, cache_dir: Path, sandbox: Sandbox
    ) -> None:
        self.job = job
        self.runs = runs
        self.settings = settings
        self.cache_dir = cache_dir
        self.sandbox = sandbox
        self.stop = asyncio.Event()
        self.stop_reason: str | None = None
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + settings.build_timeout_seconds
        self.workspace = settings.data_path / "builds" / job.build_uuid
        # What the build's commands see of the host: its workspace (with /tmp in it, so files
        # there count as disk, not memory) and, added when caching is on, its trigger's cache.
        self.binds = [Bind(self.workspace, HOME), Bind(self.workspace / "tmp", TMP)]

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        self.stop.set()

    async def execute(self) -> None:
        job = self.job
        logs = LogWriter(
            self.runs,
            job.build_uuid,
            Masker(job.secrets),
            await self.runs.next_log_seq(job.build_uuid),
        )
        done = asyncio.Event()
        flusher = asyncio.create_task(logs.run(done))
        renewer = asyncio.create_task(self._renew())
        outcome: str | None
        try:
            outcome = await self._steps(logs)
        except Stopped as stopped:
            logs.line(str(stopped))
            outcome = stopped.outcome
        except Exception as exc:  # a bug or an environment problem: fail the build, say why
            log.exception("build %s failed unexpectedly", job.build_uuid)
            logs.line(f"Failed: internal error in the runner ({type(exc).__name__})")
            outcome = "fail"
        finally:
            renewer.cancel()
            done.set()
            await flusher
            await logs.flush()
            # Off the event loop: a workspace of a million files takes seconds to remove, and
            # every account's requests would wait meanwhile.
            await asyncio.to_thread(shutil.rmtree, self.workspace, ignore_errors=True)
        if outcome is not None and not logs.lost:
            await self.runs.finish(job, outcome)

    async def _renew(self) -> None:
        """Renew the lease; a build stopped by the API (cancel) or taken away stops here."""
        every = max(0.2, self.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(min(every, 1.0))
            status = await self.runs.renew(self.job)
            if status is None:
                self.request_stop("lost")
            elif status == "stopped":
                self.request_stop("cancelled")

    async def _refresh(self) -> None:
        """Ask the database, not the last renewal, whether the build is still ours to run."""
        status = await self.runs.renew(self.job)
        if status is None:
            self.request_stop("lost")
        elif status == "stopped":
            self.request_stop("cancelled")

    def _check_stop(self) -> None:
        if self.stop_reason == "cancelled":
            raise Stopped(None, "Build cancelled.")
        if self.stop_reason == "lost":
            raise Stopped(None, "Build taken over: this runner lost its lease.")
        if self.stop_reason == "shutdown":
            raise Stopped("terminated", "Build terminated: the runner was shut down.")
        if asyncio.get_running_loop().time() >= self.deadline:
            raise Stopped("terminated", "Build was timed out")

    async def _run(
        self,
        logs: LogWriter,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        step: str,
        limit: float | None = None,
        binds: list[Bind] | None = None,
        failed: str | None = None,
    ) -> None:
        """Run one step in the sandbox; `limit` (seconds) caps it below the build's deadline;
        `binds` (a clone's) replace the build's, and keep the network whatever
        BUILDSD_BUILD_NETWORK says. `failed` is Cloudflare's line for this step's failure,
        written before buildsd's own reason."""
        await self._refresh()
        self._check_stop()
        deadline = self.deadline
        if limit is not None:
            deadline = min(deadline, asyncio.get_running_loop().time() + limit)
        outcome = await executor.run(
            self.sandbox.command(
                argv, cwd=cwd, binds=binds or self.binds, network=True if binds else None
            ),
            # bwrap, as the build uid, may not enter the data dir: it changes directory itself.
            cwd="/" if self.sandbox.confined else str(cwd),
            env=env,
            on_line=logs.line,
            deadline=deadline,
            stop=self.stop,
            grace_seconds=self.settings.cancel_grace_seconds,
            sandboxed=self.sandbox.confined,
        )
        if outcome.stopped == "timeout":
            if deadline < self.deadline:  # only the clone has a limit of its own
                raise Stopped("fail", f"Failed: {step} took longer than {limit:.0f} s")
            raise Stopped("terminated", "Build was timed out")
        if outcome.stopped:
            self._check_stop()
        if outcome.exit_code != 0:
            if failed:
                logs.line(failed)
            raise Stopped("fail", f"Failed: {step} exited with code {outcome.exit_code}")

    async def _steps(self, logs: LogWriter) -> str:
        job, trigger = self.job, self.job.trigger
        logs.line(phases.INITIALIZING_LINE)
        if job.token is None:
            raise Stopped("fail", DELETED_CREDENTIAL_LINE)
        if trigger["c_deleted_on"] is not None:
            raise Stopped(
                "fail",
                "Failed: the repository connection of this trigger was deleted; "
                "connect the repository again and update the trigger.",
            )
        try:
            url = git.clone_url(self.settings, trigger)
        except git.CloneURLError as exc:
            raise Stopped("fail", f"Failed: {exc}") from exc
        self.workspace.parent.mkdir(parents=True, exist_ok=True)
        await self._check_sandbox()
        build = job.build
        (self.workspace / "tmp").mkdir(parents=True, exist_ok=True)
        self.sandbox.own(self.workspace, self.workspace / "tmp")
        repo = self.workspace / "repo"
        base_env = self._base_env()
        clone_binds = [*self.binds, *self.sandbox.clone_binds(url)]
        inside = self.sandbox.inside(repo, self.binds)
        described = self.workspace / "tmp" / DESCRIBED
        logs.line(phases.INITIALIZED_LINE)

        await self.runs.phase(job, phases.CLONING)
        logs.line(phases.CLONING_LINE)
        logs.line(f"Cloning {git.redact(url)}")  # buildsd's own: which repository
        # One sandbox for the clone and for describing the commit: each costs ~10 ms to set up.
        steps = git.clone_commands(url, inside, build["branch"], build["commit_hash"])
        script = " && ".join(shlex.join(argv) for argv in steps)
        describe = shlex.join(git.describe_command(inside))
        script += f" && {describe} > {shlex.quote(self.sandbox.inside(described, self.binds))}"
        try:
            await self._run(
                logs,
                ["/bin/sh", "-c", script],
                self.workspace,
                {**base_env, **git.GIT_ENV},
                "git clone",
                limit=self.settings.git_timeout_seconds,
                binds=clone_binds,
            )
        except Stopped as stopped:
            if stopped.outcome == "fail" and (
                hint := git.unreachable_hint(url, trigger["provider_type"])
            ):
                logs.line(hint)
            raise
        sha, author, message = _described(described)
        await self.runs.record(
            job,
            commit_hash=sha,
            **({} if build["commit_message"] else {"commit_message": message}),
            **({} if build["author"] else {"author": author}),
        )
        root = self._root(repo, trigger["root_directory"])
        if trigger["build_caching_enabled"]:
            # Off the event loop: a cache from before builds were sandboxed is chowned file by
            # file, and may hold a million.
            await asyncio.to_thread(self._prepare_cache)
        env = self._command_env(base_env, sha)
        if not await self.runs.start_running(job):  # cancelled while cloning
            await self._refresh()
            self._check_stop()
            raise Stopped(None, "Build cancelled.")

        await self.runs.phase(job, phases.INSTALLING)
        if found := await asyncio.to_thread(tools.detected, env["PATH"]):
            logs.line(phases.tools_line(list(found)))
        installer = tools.installer(root, env)
        if installer is not None:
            logs.line(phases.installing_line(" ".join(installer)))
            await self._run(
                logs, installer, root, env, "dependency install", failed=phases.INSTALL_FAILED_LINE
            )
        await self.runs.phase(job, phases.BUILDING)
        if trigger["build_command"].strip():
            logs.line(phases.build_line(trigger["build_command"]))
            await self._run(
                logs,
                ["/bin/sh", "-c", trigger["build_command"]],
                root,
                env,
                "build command",
                failed=phases.failed_line("build command"),
            )
            logs.line(phases.BUILD_DONE_LINE)
        else:
            logs.line(phases.NO_BUILD_COMMAND_LINE)
        await self.runs.phase(job, phases.DEPLOYING)
        logs.watchers = [VERSION_ID, PREVIEW_URL]
        logs.line(phases.deploy_line(trigger["deploy_command"]))
        await self._run(
            logs,
            ["/bin/sh", "-c", trigger["deploy_command"]],
            root,
            env,
            "deploy command",
            failed=phases.failed_line("deploy command"),
        )
        logs.line(phases.DEPLOY_DONE_LINE)
        version = logs.seen.get(VERSION_ID.pattern)
        preview = logs.seen.get(PREVIEW_URL.pattern)
        if version or preview:
            await self.runs.record(
                job, version_id=version.lower() if version else None, preview_url=preview
            )
        await asyncio.to_thread(self._trim_cache)
        logs.line("Success: Build completed")
        return "success"

    async def _check_sandbox(self) -> None:
        """Unconfined builds only where one account has the server to itself (D20); and the
        build uid must reach the workspace to bind it."""
        if self.sandbox.status().mode == "unavailable":
            refusal = self.sandbox.refusal(await self.runs.several_accounts())
            if refusal:
                raise Stopped("fail", refusal)
        if problem := self.sandbox.unreachable(self.workspace.parent):
            raise Stopped("fail", f"Failed: {problem}")

    @staticmethod
    def _root(repo: Path, root_directory: str) -> Path:
        root = (repo / root_directory.strip().lstrip("/")).resolve()
        if not root.is_relative_to(repo.resolve()) or not root.is_dir():
            raise Stopped(
                "fail",
                f"Failed: root directory {root_directory!r} is not a directory of the repository",
            )
        return root

    def _base_env(self) -> dict[str, str]:
        """A clean environment: nothing of the server's own (no BUILDSD_* secrets) leaks in."""
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": self.sandbox.inside(self.workspace, self.binds),
            "LANG": "C.UTF-8",
            "TMPDIR": self.sandbox.inside(self.workspace / "tmp", self.binds),
        }

    def _command_env(self, base: dict[str, str], sha: str) -> dict[str, str]:
        job = self.job
        env = dict(base)
        env.update({name: value for name, (value, _) in job.variables.items()})
        env.update(
            CI="true",
            WORKERS_CI="1",
            WORKERS_CI_BUILD_UUID=job.build_uuid,
            WORKERS_CI_COMMIT_SHA=sha,
            WORKERS_CI_BRANCH=job.build["branch"],
            CLOUDFLARE_API_TOKEN=job.token or "",
            CLOUDFLARE_ACCOUNT_ID=job.account_id,
            # What Cloudflare's runner sets (spec newer §1.3): wrangler deploys under the
            # connected Worker's name and stops unless that name's tag is this one.
            WRANGLER_CI_OVERRIDE_NAME=job.worker_name,
            WRANGLER_CI_MATCH_TAG=str(job.trigger["external_script_id"]),
        )
        if job.preview:  # wrangler derives the Preview's alias from WORKERS_CI_BRANCH
            env["WRANGLER_CI_GENERATE_PREVIEW_ALIAS"] = "true"
        if self.settings.deploy_target == "self":  # D25: wrangler deploys to this buildsd
            env["CLOUDFLARE_API_BASE_URL"] = self.settings.self_api_url
        if job.trigger["build_caching_enabled"]:
            self.binds.append(Bind(self.cache_dir, CACHE))
            for name, sub in CACHE_ENV.items():
                env[name] = self.sandbox.inside(self.cache_dir / sub, self.binds)
        return env

    def _prepare_cache(self) -> None:
        """The trigger's cache, the build uid's, with a folder for each package manager."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.sandbox.own_tree(self.cache_dir)
        for sub in CACHE_ENV.values():
            with contextlib.suppress(FileExistsError):  # a file or link a build left
                (self.cache_dir / sub).mkdir()
            self.sandbox.own(self.cache_dir / sub)

    def _trim_cache(self) -> None:
        if not self.cache_dir.exists():
            return
        if _held_bytes(self.cache_dir) > self.settings.build_cache_max_bytes:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


def _held_bytes(top: Path) -> int:
    """The bytes of the regular files under `top`: a link a build left counts as nothing, never
    as what it points at (a link to a huge file of the host would empty the cache)."""
    total = 0
    for _, entry in entries_under(top):
        with contextlib.suppress(FileNotFoundError):  # another build of the trigger removed it
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _described(path: Path) -> tuple[str, str, str]:
    """sha, author and subject the clone step wrote; read as root from a directory the build
    uid writes to, so never through a link, and never much."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        out = file.read(MAX_DESCRIBED_BYTES)
    path.unlink()
    sha, author, message = [*out.decode(errors="replace").strip().split("\0"), "", ""][:3]
    return sha, author, message
