"""The dashboard in Debian's chromium through Playwright, against a real `buildsd serve`:
sign in, a running build's lines appear live, a dropped connection resumes with no line lost or
repeated, cancel, retry, a Read token cannot cancel, no secret in the page source, another
account's build shows nothing. Screenshots go to tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCOUNT, TOKEN
from tests.e2e.conftest import BUILDSD
from tests.e2e.proxy import CuttableProxy
from tests.gitrepo import make_repo

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SECRET = "browser-secret-value-never-shown"
TAG = "dd7160bb9cef458093557736f4b9e75b"

if not Path(CHROMIUM).exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "chromium is not installed (apt-get install -y chromium, or `make chromium`)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def result(response: httpx.Response):
    assert response.status_code == 200, response.text
    return response.json()["result"]


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*BUILDSD, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def setup_worker(api: httpx.Client, build_command: str) -> str:
    conn = result(
        api.put(
            "/repos/connections",
            json={
                "provider_account_id": "1",
                "provider_account_name": "octo-org",
                "provider_type": "github",
                "repo_id": "1",
                "repo_name": "my-worker",
            },
        )
    )
    token = result(
        api.post(
            "/tokens",
            json={
                "build_token_name": "t",
                "build_token_secret": "x" * 40,
                "cloudflare_token_id": "y",
            },
        )
    )
    trigger = result(
        api.post(
            "/triggers",
            json={
                "external_script_id": TAG,
                "repo_connection_uuid": conn["repo_connection_uuid"],
                "build_token_uuid": token["build_token_uuid"],
                "trigger_name": "Deploy main",
                "branch_includes": ["main"],
                "build_command": build_command,
                "deploy_command": "true",
            },
        )
    )
    result(
        api.patch(
            f"/triggers/{trigger['trigger_uuid']}/environment_variables",
            json={
                "API_KEY": {"value": SECRET, "is_secret": True},
                "MODE": {"value": "ci", "is_secret": False},
            },
        )
    )
    return str(trigger["trigger_uuid"])


def test_dashboard_in_chromium(start_server, env: dict[str, str], tmp_path: Path) -> None:
    make_repo(tmp_path)
    git_url = f"file://{tmp_path}/git/{{provider_account_name}}/{{repo_name}}.git"
    server = start_server(BUILDSD_RUNNER_SLOTS="2", BUILDSD_GIT_URL_GITHUB=git_url)
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    web = f"http://127.0.0.1:{proxy.port}"
    api = httpx.Client(
        base_url=f"{server.url}/client/v4/accounts/{ACCOUNT}/builds",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    lines = 150
    trigger_uuid = setup_worker(
        api, f"for i in $(seq 1 {lines}); do echo line-$i; sleep 0.1; done; echo '<b>bold</b>'"
    )
    first = result(api.post(f"/triggers/{trigger_uuid}/builds", json={"branch": "main"}))
    reader = cli(env, "tokens", "create", "--account", ACCOUNT, "--permission", "Workers CI Read")
    other = cli(env, "accounts", "create", "--name", "theirs")
    outsider = cli(env, "tokens", "create", "--account", other, "--permission", "Workers CI Write")
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def sign_in(token: str) -> None:
                """By keyboard: the labelled field has the focus, type, Enter."""
                page.goto(web + "/")
                assert page.evaluate("document.activeElement.id") == "token"
                page.keyboard.type(token)
                page.keyboard.press("Enter")
                page.wait_for_url("**/a/*")
                page.keyboard.press("Tab")  # the first stop of every page: the skip link
                assert page.evaluate("document.activeElement.textContent") == "Skip to content"

            sign_in(TOKEN)
            page.screenshot(path=str(ARTIFACTS / "workers.png"), full_page=True)
            page.goto(f"{web}/a/{ACCOUNT}/builds/{first['build_uuid']}")
            log = page.locator("#log li")
            log.filter(has_text="line-10").first.wait_for(timeout=60_000)  # live, mid-build
            assert page.locator("#status").inner_text() in ("initializing", "running")
            streams_before = proxy.accepted
            proxy.cut()  # the browser's stream drops mid-build ...
            page.get_by_text("reconnecting").or_(page.get_by_text("Following")).first.wait_for()
            page.locator("#status.success").wait_for(timeout=60_000)  # ... and resumes
            # The phases follow too: the build phase with its end, and the deploy phase.
            page.locator(".phases li", has_text="deploy").wait_for(timeout=10_000)
            assert proxy.accepted > streams_before
            # No forge set for this account: the forge updates section says so.
            assert page.get_by_role("heading", name="Forge updates").is_visible()
            assert "buildsd forge set" in page.locator("#forge-h + p").inner_text()
            shown = [t.split(" ", 1)[1] for t in log.all_inner_texts()]
            stored = []
            cursor = None
            while True:
                got = result(
                    api.get(
                        f"/builds/{first['build_uuid']}/logs",
                        params={"cursor": cursor} if cursor else {},
                    )
                )
                stored += [text for _, text in got["lines"]]
                cursor = got["cursor"]
                if not got["truncated"]:
                    break
            assert shown == stored  # none lost, none repeated, in order
            assert [s for s in shown if s.startswith("line-")] == [
                f"line-{i}" for i in range(1, lines + 1)
            ]
            assert page.locator("#log b").count() == 0  # a log line is text, never markup
            page.evaluate("window.scrollTo(0, 0)")  # the log followed to its end
            page.screenshot(path=str(ARTIFACTS / "build.png"))
            page.screenshot(path=str(ARTIFACTS / "build-full.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(ARTIFACTS / "build-phone.png"))
            page.set_viewport_size({"width": 1200, "height": 900})

            # Retry, then cancel the retried build while it runs.
            page.get_by_role("button", name="Retry build").click()
            page.wait_for_url(lambda url: first["build_uuid"] not in url)
            retried = page.url.rsplit("/", 1)[1]
            page.locator("#log li").first.wait_for(timeout=60_000)
            page.get_by_role("button", name="Cancel build").click()
            page.locator("#status.cancelled").wait_for(timeout=30_000)
            assert result(api.get(f"/builds/{retried}"))["build_outcome"] == "cancelled"

            page.goto(f"{web}/a/{ACCOUNT}/workers/{TAG}")
            assert SECRET not in page.content() and "secret (hidden)" in page.content()
            page.screenshot(path=str(ARTIFACTS / "worker.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(ARTIFACTS / "worker-phone.png"), full_page=True)
            page.set_viewport_size({"width": 1200, "height": 900})

            # A Read token sees the build but has no cancel button, and a forged POST gets 403.
            queued = result(api.post(f"/triggers/{trigger_uuid}/builds", json={"branch": "main"}))
            page.get_by_role("button", name="Sign out").click()
            sign_in(reader)
            page.goto(f"{web}/a/{ACCOUNT}/builds/{queued['build_uuid']}")
            assert page.get_by_role("button", name="Cancel build").count() == 0
            assert "may read builds" in page.content()

            # Another account's token: the build's page shows nothing of it.
            page.get_by_role("button", name="Sign out").click()
            sign_in(outsider)
            for path in (
                f"/a/{other}/builds/{first['build_uuid']}",
                f"/a/{ACCOUNT}/builds/{first['build_uuid']}",
            ):
                response = page.goto(web + path)
                assert response is not None and response.status == 404
                assert "line-1" not in page.content() and "main" not in page.inner_text("main")
        finally:
            browser.close()
            proxy.close()
    # The committed README screenshot is refreshed by hand: cp tests/artifacts/build.png docs/
    if os.environ.get("BUILDSD_UPDATE_SCREENSHOT") == "1":
        shutil.copy(
            ARTIFACTS / "build.png", Path(__file__).resolve().parents[2] / "docs/dashboard.png"
        )
