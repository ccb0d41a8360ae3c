"""The pytest plugin as a user meets it: a suite of theirs, run by pytester, against the
emulator in this process and as a `buildsd emulate` child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytest_plugins = ["pytester"]

USER_SUITE = """
import httpx
import pytest

TAG = "dd7160bb9cef458093557736f4b9e75b"
SECRET = "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T"


def trigger(account, **variables):
    c, b = account.client, f"/accounts/{account.account_id}/builds"
    conn = c.put(b + "/repos/connections", json={
        "provider_account_id": "1", "provider_account_name": "octo", "provider_type": "github",
        "repo_id": "2", "repo_name": "app"}).json()["result"]
    token = c.post(b + "/tokens", json={
        "build_token_name": "t", "build_token_secret": SECRET,
        "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b"}).json()["result"]
    made = c.post(b + "/triggers", json={
        "external_script_id": TAG, "repo_connection_uuid": conn["repo_connection_uuid"],
        "build_token_uuid": token["build_token_uuid"], "trigger_name": "main",
        "branch_includes": ["main"], "build_command": "npm run build",
        "deploy_command": "npx wrangler deploy"}).json()["result"]
    if variables:
        c.patch(b + f"/triggers/{made['trigger_uuid']}/environment_variables",
                json={k: {"value": v, "is_secret": False} for k, v in variables.items()})
    return made["trigger_uuid"]


def start(account, trigger_uuid):
    url = f"/accounts/{account.account_id}/builds/triggers/{trigger_uuid}/builds"
    return account.client.post(url, json={"branch": "main"}).json()["result"]["build_uuid"]


def test_success(buildsd_account):
    build = buildsd_account.wait_for_build(start(buildsd_account, trigger(buildsd_account)))
    assert build["build_outcome"] == "success"


def test_failure(buildsd_account):
    uuid = start(buildsd_account, trigger(buildsd_account, BUILDSD_SIMULATE_OUTCOME="fail"))
    assert buildsd_account.wait_for_build(uuid)["build_outcome"] == "fail"


def test_timeout_past_the_clock(buildsd_account):
    control = buildsd_account.control
    control.freeze()
    control.simulate(outcome="timeout")
    uuid = start(buildsd_account, trigger(buildsd_account))
    url = f"{buildsd_account.builds_url}/builds/{uuid}"
    while buildsd_account.client.get(url).json()["result"]["status"] != "running":
        pass
    control.advance(20 * 60)
    assert buildsd_account.wait_for_build(uuid)["build_outcome"] == "terminated"


def test_cancel(buildsd_account):
    buildsd_account.control.simulate(mode="manual")
    uuid = start(buildsd_account, trigger(buildsd_account))
    url = f"{buildsd_account.builds_url}/builds/{uuid}"
    while buildsd_account.client.get(url).json()["result"]["status"] != "running":
        pass
    buildsd_account.client.put(url + "/cancel")
    assert buildsd_account.wait_for_build(uuid)["build_outcome"] == "cancelled"


def test_manual_advance(buildsd_account):
    buildsd_account.control.simulate(mode="manual")
    uuid = start(buildsd_account, trigger(buildsd_account))
    url = f"{buildsd_account.builds_url}/builds/{uuid}"
    while buildsd_account.client.get(url).json()["result"]["status"] != "running":
        pass
    buildsd_account.control.advance_build(uuid)
    assert buildsd_account.wait_for_build(uuid)["build_outcome"] == "success"


def test_faults(buildsd_account):
    control = buildsd_account.control
    rule = control.fault(path="*/builds/tokens", status=401, code=12006, message="Invalid token")
    answer = buildsd_account.client.get(f"{buildsd_account.builds_url}/tokens")
    assert answer.status_code == 401 and answer.json()["errors"][0]["code"] == 12006
    assert [f["id"] for f in control.faults()] == [rule["id"]]
    control.delete_fault(rule["id"])
    assert buildsd_account.client.get(f"{buildsd_account.builds_url}/tokens").status_code == 200
    control.fault(method="GET", path="*/builds/tokens", drop=True)
    with pytest.raises(httpx.HTTPError):
        buildsd_account.client.get(f"{buildsd_account.builds_url}/tokens")
    control.fault(runner="clone")
    uuid = start(buildsd_account, trigger(buildsd_account))
    assert buildsd_account.wait_for_build(uuid)["build_outcome"] == "fail"


def test_journal_masks_secrets(buildsd_account):
    trigger(buildsd_account)
    calls = buildsd_account.control.requests(method="POST", path="*/tokens")
    assert calls[0]["body"]["build_token_secret"] == "********"
    assert SECRET not in str(calls)


def test_snapshot_and_reset(buildsd_account, buildsd_emulator):
    trigger(buildsd_account)
    control = buildsd_account.control
    control.snapshot("one")
    control.reset()
    listed = buildsd_account.client.get(f"{buildsd_account.builds_url}/triggers").json()
    assert listed["result"] == []
    control.restore("one")
    listed = buildsd_account.client.get(f"{buildsd_account.builds_url}/triggers").json()
    assert len(listed["result"]) == 1
    assert control.clock()["frozen"] is False


def test_read_token_and_isolation(buildsd_account, buildsd_emulator):
    other = buildsd_emulator.new_account()
    read = httpx.get(f"{buildsd_account.builds_url}/tokens",
                     headers={"Authorization": f"Bearer {buildsd_account.read_token}"})
    assert read.status_code == 200
    theirs = httpx.get(f"{other.builds_url}/tokens",
                       headers={"Authorization": f"Bearer {buildsd_account.token}"})
    assert theirs.status_code == 403
    assert buildsd_account.url == buildsd_emulator.url
    other.close()


def test_a_full_reset_inside_a_test(buildsd_account, buildsd_emulator):
    buildsd_emulator.reset()
    made = buildsd_emulator.new_account()
    assert made.account_id != buildsd_account.account_id


def test_refused_control_call(buildsd_emulator):
    from buildsd.testing import ControlError
    with pytest.raises(ControlError):
        buildsd_emulator.call("POST", "snapshots/nothing/restore")
"""


@pytest.fixture(autouse=True)
def sqlite_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's emulator makes its own data dir (its database is SQLite)."""
    for name in ("BUILDSD_URL", "BUILDSD_DATA_DIR", "BUILDSD_DATABASE_URL", "BUILDSD_TEST_MODE"):
        monkeypatch.delenv(name, raising=False)


def test_a_user_suite_in_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_SUITE)
    result = pytester.runpytest("--buildsd-mode", "inprocess", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=11)


@pytest.mark.slow
def test_a_user_suite_against_buildsd_emulate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=11)


@pytest.mark.slow
def test_attaching_to_a_running_emulator(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "buildsd", "emulate"], stdout=subprocess.PIPE, text=True
    )
    try:
        started = time.monotonic()
        line = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        assert time.monotonic() - started < 5
        assert set(line) == {"url", "account_id", "token", "control_url"}
        pytester.makepyfile(test_user=USER_SUITE)
        monkeypatch.setenv("BUILDSD_URL", line["url"])
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "success or journal")
        result.assert_outcomes(passed=2)
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()  # type: ignore[union-attr]


def test_the_plugin_is_inert_without_its_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    started = time.monotonic()
    result = pytester.runpytest("-p", "no:cacheprovider", "--setup-show")
    result.assert_outcomes(passed=1)
    assert time.monotonic() - started < 5
    assert "buildsd_" not in "\n".join(result.outlines)


@pytest.mark.slow
def test_the_node_recipe_of_the_guide(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """docs/testing.md's `node:test` recipe, as written there."""
    import shutil
    from pathlib import Path

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    guide = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()
    start = guide.index("```js\n") + len("```js\n")
    (tmp_path / "builds.test.mjs").write_text(guide[start : guide.index("```", start)])
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["node", "--test", str(tmp_path / "builds.test.mjs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 1" in done.stdout


@pytest.mark.slow
def test_xdist_workers_each_have_their_own_emulator_and_accounts(
    pytester: pytest.Pytester, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("xdist")
    seen = tmp_path / "seen.txt"
    pytester.makepyfile(
        test_par=f"""
import os
import pytest

@pytest.mark.parametrize("n", range(8))
def test_own_account(buildsd_account, buildsd_emulator, n):
    assert buildsd_account.client.get(buildsd_account.builds_url + "/tokens").status_code == 200
    with open({str(seen)!r}, "a") as f:
        f.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{buildsd_emulator.url}} "
                f"{{buildsd_account.account_id}}\\n")
"""
    )
    result = pytester.runpytest_subprocess("-n", "4", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    rows = [line.split() for line in seen.read_text().splitlines()]
    assert len({row[2] for row in rows}) == 8  # an account per test
    workers = {row[0]: row[1] for row in rows}
    assert len(set(workers.values())) == len(workers)  # an emulator per worker


@pytest.mark.slow
def test_an_emulator_that_cannot_start_says_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDSD_RATE_LIMIT", "-1")
    pytester.makepyfile(test_user="def test_one(buildsd_account):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "buildsd emulate did not start" in result.stdout.str()
    assert "BUILDSD_RATE_LIMIT" in result.stdout.str()
