"""A hostile build against the server that runs it: links it leaves for root to follow, the
template root, shared memory, sockets and signals, and the cleanup after it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from buildsd.runner import build as build_module
from buildsd.runner import sandbox as sandbox_module
from tests.api.flows import base, build, ok
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for, wait_line

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and shutil.which("bwrap") is None,
    reason="bubblewrap is not installed",
)


def run(world: Any, trigger: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    queued = build(world, trigger["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    return done, log_lines(world, queued["build_uuid"])


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory of the server's (root's, when the suite runs as root) a build must not get."""
    top = tmp_path / "victim"
    (top / "inner").mkdir(parents=True)
    (top / "inner" / "file").write_text("the server's\n")
    top.chmod(0o700)
    return top


def test_links_a_build_leaves_are_followed_by_nothing_the_server_does(
    runner_world, repo: Repo, victim: Path
) -> None:
    """A build replaces its cache folders and fills its workspace with links to a directory of
    the server's and to /; the next build of the trigger (after the cache was made root's, as a
    cache from before sandboxing is, so the runner walks it to give it to the build uid) and
    the cleanups follow none of them: the directory keeps its owner, mode and files."""
    world = runner_world()
    before = victim.stat()
    t = make_trigger(
        world,
        build_caching_enabled=True,
        build_command=(
            f'rm -rf "$YARN_CACHE_FOLDER" "$PNPM_HOME"; ln -sfn {victim} "$YARN_CACHE_FOLDER"; '
            f'ln -sfn {victim}/inner "$PNPM_HOME"; ln -sfn / "$npm_config_cache/root"; '
            f'ln -sfn {victim} "$HOME/victim"; ln -sfn {victim}/inner/file "$HOME/tmp/file"; '
            f'ln -sfn {victim} "$npm_config_cache/victim"'
        ),
        deploy_command="true",
    )
    done, lines = run(world, t)
    assert done["build_outcome"] == "success", lines
    cache = world.services.triggers.cache_dir(t["trigger_uuid"])
    assert (cache / "yarn").is_symlink()
    for path in [cache, *cache.rglob("*")]:
        os.chown(path, 0, 0, follow_symlinks=False)
    done, lines = run(world, t)
    assert done["build_outcome"] == "success", lines
    ok(
        world.client.post(
            base(world) + f"/triggers/{t['trigger_uuid']}/purge_build_cache", headers=world.auth
        )
    )
    after = victim.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_uid,
        before.st_gid,
        stat.S_IMODE(before.st_mode),
    )
    assert (victim / "inner").stat().st_uid == before.st_uid
    assert (victim / "inner" / "file").read_text() == "the server's\n"


def test_a_link_to_a_huge_file_does_not_count_toward_the_cache(
    runner_world, repo: Repo, tmp_path: Path
) -> None:
    """The trim sizes what the cache holds, not what its links point at: a link to a huge
    file (sparse here; /proc/kcore on a real host) must not empty the trigger's cache."""
    huge = tmp_path / "huge"
    with huge.open("wb") as file:
        file.truncate(64 * 1024**3)
    world = runner_world(build_cache_max_bytes=1024 * 1024)
    t = make_trigger(
        world,
        build_caching_enabled=True,
        build_command=(
            f'echo kept > "$npm_config_cache/kept"; ln -sfn {huge} "$npm_config_cache/big"'
        ),
        deploy_command="true",
    )
    done, lines = run(world, t)
    assert done["build_outcome"] == "success", lines
    cache = world.services.triggers.cache_dir(t["trigger_uuid"])
    assert (cache / "npm" / "kept").read_text() == "kept\n"


def test_cleanups_run_off_the_event_loop(runner_world, repo: Repo, monkeypatch) -> None:
    """Removing a workspace (or sizing a cache) of a build that made a million files takes
    seconds: on the event loop it would stall every account's requests meanwhile."""
    on_loop: list[str] = []
    real = shutil.rmtree

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if asyncio._get_running_loop() is not None:
            on_loop.append(str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(build_module.shutil, "rmtree", rmtree)
    world = runner_world(build_cache_max_bytes=1)
    t = make_trigger(
        world,
        build_caching_enabled=True,
        build_command='head -c 4096 /dev/zero > "$npm_config_cache/big"',
        deploy_command="true",
    )
    done, lines = run(world, t)
    assert done["build_outcome"] == "success", lines
    assert not world.services.triggers.cache_dir(t["trigger_uuid"]).exists()  # trimmed
    purge = base(world) + f"/triggers/{t['trigger_uuid']}/purge_build_cache"
    ok(world.client.post(purge, headers=world.auth))
    assert on_loop == []


def test_a_cache_from_before_the_sandbox_is_given_to_the_build_uid_off_the_event_loop(
    runner_world, repo: Repo, monkeypatch
) -> None:
    """A cache written before builds were sandboxed is root's: chowned file by file for the
    build uid, which for a big cache takes seconds: never on the event loop."""
    if os.geteuid() != 0:
        pytest.skip("builds drop to the build uid only when buildsd runs as root")
    on_loop: list[str] = []
    real = os.chown

    def chown(path: Any, *args: Any, **kwargs: Any) -> None:
        if asyncio._get_running_loop() is not None:
            on_loop.append(os.fspath(path))
        real(path, *args, **kwargs)

    world = runner_world()
    t = make_trigger(
        world,
        build_caching_enabled=True,
        build_command='cat "$npm_config_cache/deep/file"',
        deploy_command="true",
    )
    cache = world.services.triggers.cache_dir(t["trigger_uuid"])
    (cache / "npm" / "deep").mkdir(parents=True)
    (cache / "npm" / "deep" / "file").write_text("from before\n")
    monkeypatch.setattr(sandbox_module.os, "chown", chown)
    done, lines = run(world, t)
    assert done["build_outcome"] == "success" and "from before" in lines, lines
    assert (cache / "npm" / "deep" / "file").stat().st_uid == world.services.settings.build_uid
    assert not [path for path in on_loop if path.startswith(str(cache)) or "/" not in path]


def test_a_folder_swapped_for_a_link_as_root_walks_a_cache_leads_nowhere(
    make_settings, victim: Path, tmp_path: Path, monkeypatch
) -> None:
    """Another build of the trigger may be running while root walks its cache (off the event
    loop): a folder it swaps for a link to a directory of the server's, in the instant after
    the walk listed it and before it enters it, leads the walk nowhere."""
    sandbox = sandbox_module.Sandbox(make_settings())
    if sandbox.uid is None or not sandbox.confined:
        pytest.skip("the cache is chowned only for a sandboxed build uid (as root)")
    cache = tmp_path / "cache"
    (cache / "swapped" / "below").mkdir(parents=True)
    real_open, real_scandir = os.open, os.scandir
    swapped: list[Any] = []

    def swap(path: Any) -> None:  # the build's move, just before the walk goes into `path`
        if not swapped and not isinstance(path, int) and os.path.basename(path) == "swapped":
            swapped.append(path)
            (cache / "swapped" / "below").rmdir()
            (cache / "swapped").rmdir()
            (cache / "swapped").symlink_to(victim)

    def open_(path: Any, *args: Any, **kwargs: Any) -> int:
        swap(path)
        return real_open(path, *args, **kwargs)

    def scandir(path: Any = ".") -> Any:
        swap(path)
        return real_scandir(path)

    monkeypatch.setattr(sandbox_module.os, "open", open_)
    monkeypatch.setattr(sandbox_module.os, "scandir", scandir)
    sandbox.own_tree(cache)
    monkeypatch.undo()
    assert swapped and cache.stat().st_uid == sandbox.uid
    assert (victim / "inner").stat().st_uid == victim.stat().st_uid == os.geteuid()
    assert (victim / "inner" / "file").stat().st_uid == os.geteuid()


def test_a_file_another_build_removes_while_the_cache_is_sized_is_not_an_error(
    tmp_path: Path, monkeypatch
) -> None:
    """Another build of the trigger may be installing into the cache while a finished build
    sizes it: a file gone between the listing and its stat counts as nothing, and does not turn
    the finished build into an internal error."""
    cache = tmp_path / "cache"
    (cache / "npm").mkdir(parents=True)
    (cache / "npm" / "kept").write_bytes(b"x" * 10)
    (cache / "npm" / "gone").write_bytes(b"x" * 1000)
    real = os.scandir

    def scandir(path: Any) -> Any:
        listing = list(real(path))
        with contextlib.suppress(FileNotFoundError):  # the other build's move, after the listing
            os.unlink("gone", dir_fd=path)
        return contextlib.nullcontext(iter(listing))

    monkeypatch.setattr(sandbox_module.os, "scandir", scandir)
    assert build_module._held_bytes(cache) == 10


def test_the_template_root_and_other_repositories_are_not_there(
    runner_world, repo: Repo, tmp_path: Path
) -> None:
    """file:// clones bind their own repository read-only, for the clone only: the build's
    commands see no template root, so cannot read or push into another account's bare repo."""
    world = runner_world()
    git_root = tmp_path / "git"
    theirs = git_root / "them" / "their-repo.git"
    theirs.mkdir(parents=True)
    (theirs / "HEAD").write_text("ref: refs/heads/main\n")
    t = make_trigger(
        world,
        build_command=(
            f"ls {git_root}; ls {repo.bare}; echo x > {theirs}/HEAD; "
            f"git push {repo.bare} HEAD:refs/heads/stolen; true"
        ),
        deploy_command="true",
    )
    done, lines = run(world, t)
    text = "\n".join(lines)
    assert done["build_outcome"] == "success", text
    # Inside, /tmp is the workspace's: the clone's bind left only empty mount points there.
    assert not {"HEAD", "objects", "refs", "them"} & set(lines), lines
    assert (theirs / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (Path(repo.bare) / "refs" / "heads" / "stolen").exists()


ABSTRACT = (
    'python3 -c "import socket,time; s=socket.socket(socket.AF_UNIX); '
    "s.bind('\\0buildsd-hostile'); s.listen(); print('holding', flush=True); time.sleep(30)\""
)
PROBE = (
    'python3 -c "import socket; s=socket.socket(socket.AF_UNIX); '
    "s.connect('\\0buildsd-hostile'); print('CONNECTED')\" || echo UNREACHABLE"
)


@pytest.mark.parametrize("network", ["none", "host"])
def test_another_build_is_out_of_reach(runner_world, repo: Repo, network: str) -> None:
    """While one build runs, another sees nothing of its /dev/shm and cannot signal it
    (`kill -9 -1`); its abstract unix sockets are out of reach with BUILDSD_BUILD_NETWORK=none,
    and within reach with `host` (one network namespace: docs/builds.md says so)."""
    world = runner_world(build_network=network)
    holder = make_trigger(world, build_command="echo mine > /dev/shm/mine", deploy_command=ABSTRACT)
    held = build(world, holder["trigger_uuid"])
    wait_line(world, held["build_uuid"], "holding")
    prober = make_trigger(
        world,
        trigger_name="prober",
        build_command="ls /dev/shm; cat /dev/shm/mine; kill -9 -1; true",
        deploy_command=PROBE,
    )
    done, lines = run(world, prober)
    assert done["build_outcome"] == "success", lines
    assert "mine" not in lines
    assert ("CONNECTED" in lines) == (network == "host"), lines
    still = ok(world.client.get(base(world) + f"/builds/{held['build_uuid']}", headers=world.auth))
    assert still["status"] == "running"
    ok(world.client.put(base(world) + f"/builds/{held['build_uuid']}/cancel", headers=world.auth))
    assert wait_for(world, held["build_uuid"])["build_outcome"] == "cancelled"
