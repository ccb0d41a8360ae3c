"""The build sandbox (D20): one function turns a command into the argv that runs it in bwrap."""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from buildsd import git
from buildsd.config import Settings

# Inside, the workspace is Cloudflare's build home (the clone is HOME/repo) and the trigger's
# cache has a fixed place: no host path (the data dir's, another build's uuid) shows through.
HOME = "/opt/buildhome"
CACHE = "/opt/buildcache"
TMP = "/tmp"  # noqa: S108  (the sandbox's own: a bind of the workspace's tmp/, or a tmpfs)
# The system, read-only; a symlink (merged /usr) stays a symlink.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Of /etc only what programs need to run, resolve names and trust TLS, never all of it: a file
# such as /etc/buildsd/env may be readable by the server's user.
ETC = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)
# /dev/shm and a /tmp nobody bound are memory: capped like Docker's /dev/shm.
TMPFS_BYTES = 64 * 1024**2
PROBE_SECONDS = 10
INSTALL_HINT = (
    "install bubblewrap (apt-get install bubblewrap) or set BUILDSD_SANDBOX=off to run "
    "builds unconfined"
)


class Bind(NamedTuple):
    """A host directory the sandbox shows at `inside`."""

    host: Path
    inside: str
    writable: bool = True


@dataclass(frozen=True)
class Status:
    mode: str  # "bwrap", "off" (chosen), or "unavailable" (auto, and bubblewrap does not work)
    reason: str = ""  # why bubblewrap does not work


class Sandbox:
    """Turns commands into sandboxed argvs for one process's settings (docs/builds.md)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._root = os.geteuid() == 0
        # Who owns what a build writes: as root the build drops to this uid.
        self.uid: int | None = settings.build_uid if self._root else None
        self._status: Status | None = None

    @property
    def confined(self) -> bool:
        return self.status().mode == "bwrap"

    def status(self) -> Status:
        """Probed once: does bubblewrap run a command here?"""
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> Status:
        if self.settings.sandbox == "off":
            return Status("off")
        bwrap = shutil.which(self.settings.bwrap_path)
        if bwrap is None:
            return Status("unavailable", f"{self.settings.bwrap_path!r} is not installed")
        try:
            sandboxed = [*self._drop(), *self._bwrap(bwrap, Path("/"), [], network=False)]
        except FileNotFoundError as exc:
            return Status("unavailable", str(exc))
        reason = _probe(tuple([*self._limits(), *sandboxed, "true"]), bwrap)
        return Status("unavailable", reason) if reason else Status("bwrap")

    def mode(self) -> str:
        return self.status().mode

    def refusal(self, several_accounts: bool) -> str | None:
        """Why a build must not start, or None: unconfined builds only with one account (or
        BUILDSD_SANDBOX=off chosen)."""
        status = self.status()
        if status.mode != "unavailable":
            return None
        if self.settings.sandbox == "bwrap":
            return (
                f"Failed: BUILDSD_SANDBOX=bwrap but the build sandbox cannot run "
                f"({status.reason}); {INSTALL_HINT}."
            )
        if several_accounts:
            return (
                f"Failed: the build sandbox cannot run ({status.reason}) and this server has "
                f"more than one account, so builds run only sandboxed; {INSTALL_HINT}."
            )
        return None

    def command(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        binds: Sequence[Bind],
        network: bool | None = None,
    ) -> list[str]:
        """The argv that runs `argv` in `cwd` (a host path under one of `binds`), in the
        sandbox when it is on and works, with the build's rlimits either way.

        Inside, only `binds`, the system (read-only) and a private /proc, /dev and /tmp exist;
        Without the network (`network=False`, or None and BUILDSD_BUILD_NETWORK=none) it has
        only a loopback of its own; `network=True` (a clone's) keeps it whatever the setting.
        """
        limits = self._limits()
        if not self.confined:
            return [*limits, *argv]
        bwrap = shutil.which(self.settings.bwrap_path) or self.settings.bwrap_path
        if network is None:
            network = self.settings.build_network == "host"
        return [*limits, *self._drop(), *self._bwrap(bwrap, cwd, binds, network), *argv]

    def inside(self, path: Path, binds: Sequence[Bind]) -> str:
        """Where a command sees the host `path` (itself when unconfined)."""
        if not self.confined:
            return str(path)
        for bind in sorted(binds, key=lambda b: len(b.host.parts), reverse=True):
            if path.is_relative_to(bind.host):
                rest = path.relative_to(bind.host)
                return bind.inside if rest == Path() else f"{bind.inside.rstrip('/')}/{rest}"
        raise ValueError(f"{path} is not inside the sandbox")

    def clone_binds(self, url: str) -> list[Bind]:
        """A file:// repository inside a BUILDSD_GIT_URL_* template's fixed root is bound
        read-only, so local repositories can be cloned; nothing else of the host is."""
        parts = urlsplit(url)
        if parts.scheme != "file":
            return []
        repo = Path(os.path.realpath(unquote(parts.path)))
        data = self.settings.data_path
        if repo.is_relative_to(data):
            return []
        for root in self._file_roots():
            if repo.is_relative_to(root) and repo != root:
                return [Bind(repo, str(repo), writable=False)]
        return []

    def clone_command(self, url: str, scratch: Path, branch: str) -> tuple[list[str], str]:
        """Config autofill's shallow clone into `scratch`/repo, confined as a build's clone is
        (`scratch` is its home); the argv and the HOME to give it."""
        binds = [Bind(scratch, HOME), *self.clone_binds(url)]
        self.own(scratch)
        (argv,) = git.clone_commands(url, self.inside(scratch / "repo", binds), branch, "")
        command = self.command(argv, cwd=scratch, binds=binds, network=True)
        return command, self.inside(scratch, binds)

    def unreachable(self, path: Path) -> str | None:
        """Why bwrap, run as the build uid, could not reach `path` to bind it, or None."""
        if self.uid is None or not self.confined:
            return None
        for step in [*reversed(path.parents), path]:
            st = step.stat()
            mode = st.st_mode
            # setpriv clears the supplementary groups: the uid's bits, its gid's, or others'.
            if st.st_uid == self.uid:
                mode >>= 6
            elif st.st_gid == self.uid:
                mode >>= 3
            if not mode & 1:
                return (
                    f"builds run as uid {self.uid} (BUILDSD_BUILD_UID), and {step} (mode "
                    f"{st.st_mode & 0o777:o}) does not let it reach {path}: make it searchable "
                    f"(chmod o+x {step}) or choose a BUILDSD_DATA_DIR that uid can reach"
                )
        return None

    def own(self, *paths: Path) -> None:
        """Give the build uid what buildsd made for it; never through a symlink a build left."""
        if self.uid is None or not self.confined:
            return
        for path in paths:
            os.chown(path, self.uid, self.uid, follow_symlinks=False)

    def own_tree(self, top: Path) -> None:
        """Give the build uid a directory and all in it, unless it has it already (a cache
        written before builds were sandboxed belongs to the server's user)."""
        if self.uid is None or not self.confined or top.lstat().st_uid == self.uid:
            return
        for dir_fd, entry in entries_under(top):
            os.chown(entry.name, self.uid, self.uid, dir_fd=dir_fd, follow_symlinks=False)
        os.chown(top, self.uid, self.uid, follow_symlinks=False)

    def _file_roots(self) -> list[Path]:
        s = self.settings
        found = []
        for template in (
            s.git_url_github,
            s.git_url_gitlab,
            s.git_url_gitlab_internal,
            s.git_url_origin,
        ):
            if not template.startswith("file://"):
                continue
            fixed = unquote(urlsplit(template.split("{", 1)[0]).path)
            root = Path(os.path.realpath(fixed if fixed.endswith("/") else os.path.dirname(fixed)))
            if root != Path("/"):  # a template that fixes nothing gives no root
                found.append(root)
        return found

    def _drop(self) -> list[str]:
        """As root, bwrap's user namespace would map the build to uid 0 outside: drop first."""
        if self.uid is None:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise FileNotFoundError("setpriv (util-linux) is needed to drop to BUILDSD_BUILD_UID")
        uid = str(self.uid)
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]

    def _limits(self) -> list[str]:
        s = self.settings
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            return []
        wanted = [
            ("data", resource.RLIMIT_DATA, s.build_memory_bytes),
            ("nproc", resource.RLIMIT_NPROC, s.build_processes),
            ("nofile", resource.RLIMIT_NOFILE, s.build_open_files),
            ("fsize", resource.RLIMIT_FSIZE, s.build_file_bytes),
        ]
        args = [prlimit, "--core=0"]
        for name, kind, value in wanted:
            hard = resource.getrlimit(kind)[1]
            if not self._root and hard != resource.RLIM_INFINITY:
                value = min(value, hard)  # only root may raise a hard limit
            args.append(f"--{name}={value}")
        return [*args, "--"]

    def _bwrap(self, bwrap: str, cwd: Path, binds: Sequence[Bind], network: bool) -> list[str]:
        args = [bwrap, "--unshare-all", *(["--share-net"] if network else [])]
        args += ["--die-with-parent", "--new-session", *_system()]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm"]  # noqa: S108
        if not any(bind.inside == TMP for bind in binds):
            args += ["--size", str(TMPFS_BYTES), "--tmpfs", TMP]
        read_only = [Bind(Path(p), p, writable=False) for p in self.settings.read_only_paths]
        data = self.settings.data_path
        masks = []
        # Parents before what lies in them: a later mount over /tmp would hide a path bound
        # inside /tmp before it.
        for bind in sorted([*read_only, *binds], key=lambda b: len(Path(b.inside).parts)):
            if not bind.writable and bind.host.is_relative_to(data):
                continue  # nothing of the data dir but a build's own workspace and cache
            args += ["--bind" if bind.writable else "--ro-bind-try", str(bind.host), bind.inside]
            if not bind.writable and data.is_relative_to(bind.host):
                masks.append(f"{bind.inside.rstrip('/')}/{data.relative_to(bind.host)}")
        for mask in masks:  # a read-only directory holding the data dir shows it empty
            args += ["--tmpfs", mask, "--remount-ro", mask]
        args += ["--remount-ro", "/dev", "--remount-ro", "/"]
        return [*args, "--chdir", self.inside(cwd, binds) if binds else "/", "--"]


# A directory opened by its parent's fd, never through a link, never a non-directory.
_SUBDIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def entries_under(top: Path) -> Iterator[tuple[int, os.DirEntry[str]]]:
    """Every entry below `top`, with the fd of the directory it is in (for `dir_fd=`).

    Root walks trees a build writes to, maybe while another build of the trigger runs: each
    directory is opened from its parent's fd and refused if it is a link by then, so a folder
    swapped for a link to / after it was listed leads nowhere (os.walk would follow it)."""
    fd = os.open(top, _SUBDIR)
    try:
        yield from _entries(fd)
    finally:
        os.close(fd)


def _entries(fd: int) -> Iterator[tuple[int, os.DirEntry[str]]]:
    with os.scandir(fd) as listing:
        for entry in listing:
            yield fd, entry
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                sub = os.open(entry.name, _SUBDIR, dir_fd=fd)
            except OSError:  # gone, or no longer a directory
                continue
            try:
                yield from _entries(sub)
            finally:
                os.close(sub)


@functools.cache
def _system() -> tuple[str, ...]:
    args: list[str] = []
    for top in SYSTEM:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return tuple(args)


@functools.cache
def _probe(argv: tuple[str, ...], bwrap: str) -> str:
    """'' when `argv` (a sandboxed `true`) succeeds, else why not."""
    try:
        done = subprocess.run(
            argv, env={}, capture_output=True, text=True, timeout=PROBE_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap}: {exc}"
    if done.returncode == 0:
        return ""
    said = done.stderr.strip().splitlines()[-1:]
    return said[0] if said else f"{bwrap} exited with code {done.returncode}"
