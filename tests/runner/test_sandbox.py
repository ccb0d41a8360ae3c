"""The build sandbox (D20), with real bubblewrap: what a hostile build can reach, and what not."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.flows import base, build, ok
from tests.runner.conftest import Repo, log_lines, make_trigger, wait_for, wait_line

# On CI (root) bubblewrap is installed by `make test`: there these tests must run, never skip.
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (apt-get install bubblewrap; `make test` installs it "
    "when run as root)",
)
PLANTED = "planted-server-environment-value-4711"


def run_build(world, **fields) -> tuple[dict, list[str]]:
    t = make_trigger(world, **{"build_command": "", "deploy_command": "true", **fields})
    queued = build(world, t["trigger_uuid"])
    done = wait_for(world, queued["build_uuid"])
    return done, log_lines(world, queued["build_uuid"])


def test_the_data_dir_is_not_there(runner_world, repo: Repo) -> None:
    world = runner_world()
    data = world.services.settings.data_path
    database = Path(world.services.settings.resolved_database_url.removeprefix("sqlite:///"))
    key = (data / "secret.key").read_text().strip()
    done, lines = run_build(
        world,
        build_command=(
            f"cat {data}/secret.key; head -c 16 {database}; ls {data}; cat /etc/shadow; "
            "echo ROOT; ls /; echo END; true"
        ),
        deploy_command="touch /x || echo ROOT-READ-ONLY",
    )
    text = "\n".join(lines)
    assert done["build_outcome"] == "success", text
    assert key not in text and "SQLite format 3" not in text
    assert f"cat: {data}/secret.key: No such file or directory" in lines
    assert "cat: /etc/shadow: No such file or directory" in lines
    assert "ROOT-READ-ONLY" in lines
    # The system and the build's own places: no /root, /work, /home, /var, /srv.
    root = set(lines[lines.index("ROOT") + 1 : lines.index("END")])
    assert root <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc"} | {
        "sbin",
        "tmp",
        "usr",
    }, root


@pytest.fixture
def planted() -> Iterator[None]:
    os.environ["PLANTED_SERVER_VALUE"] = PLANTED
    yield
    del os.environ["PLANTED_SERVER_VALUE"]


def test_no_process_but_its_own_and_no_server_environment(
    runner_world, repo: Repo, planted: None
) -> None:
    world = runner_world()
    server = os.getpid()  # the app runs in this process
    done, lines = run_build(
        world,
        build_command=(
            f"cat /proc/{server}/environ; cat /proc/*/environ | tr '\\0' '\\n'; "
            "for p in /proc/[0-9]*; do printf 'PROC %s\\n' \"$(tr '\\0' ' ' < $p/cmdline)\"; done; "
            "echo UID=$(id -u)"
        ),
    )
    text = "\n".join(lines)
    assert done["build_outcome"] == "success", text
    assert PLANTED not in text and "BUILDSD_" not in text
    procs = [line for line in lines if line.startswith("PROC ")]
    # bwrap's init, the shell, and what the shell runs: nothing of the server or of pytest.
    assert procs and len(procs) <= 6, procs
    assert not [p for p in procs if "python" in p or "pytest" in p], procs
    uid = next(line for line in lines if line.startswith("UID="))
    assert uid != "UID=0"
    if os.geteuid() == 0:
        assert uid == "UID=65534"


def test_another_builds_workspace_and_cache_are_not_there(runner_world, repo: Repo) -> None:
    world = runner_world()
    data = world.services.settings.data_path
    holder = make_trigger(
        world,
        build_command='echo mine > "$HOME/mine.txt"; echo mine > "$npm_config_cache/mine.txt"',
        deploy_command="echo holding; sleep 30",
    )
    held = build(world, holder["trigger_uuid"])
    wait_line(world, held["build_uuid"], "holding")
    other_home = data / "builds" / held["build_uuid"]
    other_cache = world.services.triggers.cache_dir(holder["trigger_uuid"])
    assert (other_home / "mine.txt").exists() and (other_cache / "npm" / "mine.txt").exists()
    done, lines = run_build(
        world,
        trigger_name="prying",
        build_command=(
            f"cat {other_home}/mine.txt {other_cache}/npm/mine.txt; ls {data}/builds; "
            "ls /opt /opt/buildcache; cat /opt/*/mine.txt /opt/buildcache/*/mine.txt; true"
        ),
    )
    ok(world.client.put(base(world) + f"/builds/{held['build_uuid']}/cancel", headers=world.auth))
    text = "\n".join(lines)
    assert done["build_outcome"] == "success", text
    assert "mine" not in lines
    assert held["build_uuid"] not in text.replace(str(other_home), "")
    assert holder["trigger_uuid"] not in text.replace(str(other_cache), "")


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on this machine's loopback that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.mark.parametrize("network", ["host", "none"])
def test_build_network(runner_world, repo: Repo, listener: int, network: str) -> None:
    world = runner_world(build_network=network)
    probe = (
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', "
        f"{listener}), 2); print('CONNECTED')\" || echo UNREACHABLE"
    )
    done, lines = run_build(world, build_command=probe)
    assert done["build_outcome"] == "success", lines
    assert ("CONNECTED" in lines) == (network == "host")
    assert ("UNREACHABLE" in lines) == (network == "none")


def test_limits_apply(runner_world, repo: Repo) -> None:
    world = runner_world(
        build_open_files=1234,
        build_processes=567,
        build_memory_bytes=3 * 1024**3,
        build_file_bytes=5 * 1024**2,
    )
    done, lines = run_build(
        world,
        build_command=(
            'python3 -c "import resource as r; print(*(r.getrlimit(getattr(r, n))[0] for n in '
            "('RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_DATA', 'RLIMIT_FSIZE')))\"; "
            "head -c 6291456 /dev/zero > big || echo TOO-BIG"
        ),
    )
    assert done["build_outcome"] == "success", lines
    assert f"1234 567 {3 * 1024**3} {5 * 1024**2}" in lines
    assert "TOO-BIG" in lines


def test_read_only_paths_show_but_never_the_data_dir(runner_world, repo: Repo, tmp_path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "tool.sh").write_text("#!/bin/sh\necho TOOL-RAN\n")
    (tools / "tool.sh").chmod(0o755)
    # tmp_path holds the data dir too: it must show empty.
    world = runner_world(build_read_only_paths=f"{tools}:{tmp_path}")
    data = world.services.settings.data_path
    done, lines = run_build(
        world,
        build_command=f"{tools}/tool.sh; ls -A {data}; echo END; touch {tools}/x || echo RO",
    )
    assert done["build_outcome"] == "success", lines
    assert "TOOL-RAN" in lines and "RO" in lines
    between = lines[lines.index("TOOL-RAN") + 1 : lines.index("END")]
    assert between == []


def spy(tmp_path: Path) -> tuple[Path, Path]:
    """A bwrap that notes each command line it runs (as the build uid), then is bwrap."""
    calls = tmp_path / "spy" / "calls"
    calls.parent.mkdir()
    calls.touch()
    calls.parent.chmod(0o777)
    calls.chmod(0o666)
    script = tmp_path / "spy" / "bwrap"
    script.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("bwrap")} "$@"\n')
    script.chmod(0o755)
    return script, calls


def test_clones_and_commands_all_run_in_bwrap(runner_world, repo: Repo, tmp_path) -> None:
    script, calls = spy(tmp_path)
    world = runner_world(bwrap_path=str(script))
    done, lines = run_build(world, build_command="echo BUILDING", deploy_command="echo DEPLOYING")
    assert done["build_outcome"] == "success", lines
    seen = calls.read_text().splitlines()
    for needle in ("-c git clone ", "&& git -C /opt/buildhome/repo log ", "echo BUILDING"):
        assert [line for line in seen if needle in line], (needle, seen)
    assert all("--unshare-all" in line and "--die-with-parent" in line for line in seen)


def test_config_autofill_clones_in_bwrap(make_world, repo: Repo, tmp_path) -> None:
    from tests.api.flows import connection
    from tests.api.test_autofill import OWNER_ID, REPO_ID

    script, calls = spy(tmp_path)
    repo.commit({"wrangler.toml": 'name = "spied"\n'}, "config")
    git_url = f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    world = make_world(git_url_github=git_url, bwrap_path=str(script))
    connection(world, repo_id=REPO_ID)
    path = f"/repos/github/{OWNER_ID}/{REPO_ID}/config_autofill"
    result = ok(world.client.get(base(world) + path, params={"branch": "main"}, headers=world.auth))
    assert result["default_worker_name"] == "spied"
    assert [line for line in calls.read_text().splitlines() if " -- git clone " in line]


@pytest.mark.parametrize(
    ("mode", "accounts", "refused"),
    [("auto", 2, True), ("auto", 1, False), ("bwrap", 1, True)],
)
def test_without_a_working_bwrap(
    runner_world, repo: Repo, mode: str, accounts: int, refused: bool
) -> None:
    world = runner_world(sandbox=mode, bwrap_path="/bin/false")
    for n in range(accounts - 1):
        world.new_account(f"tenant {n}")
    if accounts > 1:
        world.grant()  # two accounts: this one connects only what it was granted (D21)
    done, lines = run_build(world, deploy_command="echo UNCONFINED")
    if refused:
        assert done["build_outcome"] == "fail"
        assert "UNCONFINED" not in lines
        (line,) = [line for line in lines if "build sandbox cannot run" in line]
        assert "install bubblewrap" in line and "BUILDSD_SANDBOX=off" in line
        assert "/bin/false exited with code 1" in line
        assert ("more than one account" in line) == (accounts > 1)
    else:  # one account has the server to itself: builds run, unconfined
        assert done["build_outcome"] == "success" and "UNCONFINED" in lines
    ready = world.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["result"]["sandbox"] == "unavailable"


def test_a_bwrap_that_is_not_installed_is_named(runner_world, repo: Repo, caplog) -> None:
    world = runner_world(sandbox="bwrap", bwrap_path="no-such-bwrap")
    done, lines = run_build(world, deploy_command="echo UNCONFINED")
    assert done["build_outcome"] == "fail" and "UNCONFINED" not in lines
    (line,) = [line for line in lines if "build sandbox cannot run" in line]
    assert "BUILDSD_SANDBOX=bwrap" in line and "'no-such-bwrap' is not installed" in line
    assert "build sandbox unavailable ('no-such-bwrap' is not installed)" in caplog.text
    assert world.client.get("/readyz").json()["result"]["sandbox"] == "unavailable"


@pytest.mark.parametrize("accounts", [1, 2])
def test_config_autofill_without_a_working_bwrap(
    make_world, repo: Repo, tmp_path: Path, caplog, accounts: int
) -> None:
    """Autofill's clone is refused as a build is: unconfined only while one account has the
    server to itself; the caller sees 404 12000, the operator a log line saying why."""
    from tests.api.flows import connection, failure
    from tests.api.test_autofill import OWNER_ID, REPO_ID

    repo.commit({"wrangler.toml": 'name = "unconfined"\n'}, "config")
    git_url = f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    world = make_world(git_url_github=git_url, bwrap_path="/bin/false")
    if accounts > 1:
        world.new_account("tenant")
        world.grant()
    connection(world, repo_id=REPO_ID)
    path = f"/repos/github/{OWNER_ID}/{REPO_ID}/config_autofill"
    got = world.client.get(base(world) + path, params={"branch": "main"}, headers=world.auth)
    if accounts > 1:
        failure(got, 404, 12000)
        (line,) = [r.getMessage() for r in caplog.records if "config autofill" in r.getMessage()]
        assert "the build sandbox cannot run (/bin/false exited with code 1)" in line
        assert "more than one account" in line and "BUILDSD_SANDBOX=off" in line
    else:
        assert ok(got)["default_worker_name"] == "unconfined"


@pytest.mark.parametrize(
    ("owner", "group", "mode", "reached"),
    [(0, 0, 0o700, False), (0, 65534, 0o710, True), (65534, 0, 0o100, True)],
)
def test_a_data_dir_the_build_uid_cannot_reach(
    runner_world, repo: Repo, tmp_path: Path, caplog, owner: int, group: int, mode: int, reached
) -> None:
    """As root, bwrap binds the workspace as the build uid: a directory above the data dir
    that uid may not pass (by its owner, group or other bits) fails every build saying which
    and what to do, and start-up says so first (docs/builds.md)."""
    if os.geteuid() != 0:
        pytest.skip("builds drop to the build uid only when buildsd runs as root")
    private = tmp_path / "private"
    private.mkdir()
    os.chown(private, owner, group)
    private.chmod(mode)
    world = runner_world(data_dir=str(private / "data"))
    done, lines = run_build(world, deploy_command="echo DEPLOYED")
    if reached:
        assert done["build_outcome"] == "success" and "DEPLOYED" in lines, lines
        assert "every build will fail" not in caplog.text
        return
    assert done["build_outcome"] == "fail" and "DEPLOYED" not in lines
    expected = (
        f"builds run as uid 65534 (BUILDSD_BUILD_UID), and {private} (mode 700) does not let "
        f"it reach {private}/data/builds: make it searchable (chmod o+x {private})"
    )
    assert [line for line in lines if line.startswith(f"Failed: {expected}")], lines
    assert f"build sandbox: every build will fail: {expected}" in caplog.text


def test_off_is_announced_and_in_readyz(runner_world, repo: Repo, caplog, planted) -> None:
    world = runner_world(sandbox="off")
    ready = world.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["result"]["sandbox"] == "off"
    assert "build sandbox off (BUILDSD_SANDBOX=off)" in caplog.text
    done, lines = run_build(world, build_command="id -u")
    assert done["build_outcome"] == "success"
    if os.geteuid() == 0:
        assert "0" in lines  # as before the sandbox: the server's own user


def test_readyz_says_bwrap_by_default(runner_world, repo: Repo) -> None:
    assert runner_world().client.get("/readyz").json()["result"]["sandbox"] == "bwrap"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("sandbox", "docker", "invalid setting"),
        ("build_network", "bridge", "invalid setting"),
        ("build_uid", 0, "BUILDSD_BUILD_UID must be an unprivileged uid"),
        ("build_open_files", 0, "BUILDSD_BUILD_OPEN_FILES must be at least 1"),
        ("build_read_only_paths", "relative/dir", "each path must be absolute"),
    ],
)
def test_bad_sandbox_settings_are_refused(setting: str, value: object, message: str) -> None:
    from buildsd.config import load_settings
    from buildsd.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, **{setting: value})
