"""The dashboard in-process: sign-in, every page, CSRF, permissions, escaping, other accounts."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from buildsd.services.administration import policy_for
from tests.api.flows import TAG, base, build, ok, trigger
from tests.conftest import TOKEN, World
from tests.webhooks.conftest import add_trigger, connect, deliver_github, settle
from tests.webhooks.payloads import GITHUB_SECRET, github_commit, github_push

HOSTILE = '<script>alert("x")</script>'


def csrf_of(world: World) -> str:
    page = world.client.get("/")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(world: World, token: str = TOKEN) -> Any:
    return world.client.post(
        "/sign-in", data={"token": token, "csrf": csrf_of(world)}, follow_redirects=False
    )


@pytest.fixture
def web(make_world) -> World:
    return make_world(github_webhook_secret=GITHUB_SECRET)


def test_sign_in_sets_a_sealed_httponly_cookie(web: World) -> None:
    page = web.client.get("/")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    signed = sign_in(web)
    assert signed.status_code == 303
    cookie = next(v for k, v in signed.headers.multi_items() if k == "set-cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie  # sealed, not the token itself
    home = web.client.get("/", follow_redirects=False)
    assert home.headers["location"] == f"/a/{web.account}"
    out = web.client.post("/sign-out", data={"csrf": csrf_of(web)}, follow_redirects=False)
    assert out.status_code == 303
    web.client.cookies.delete("buildsd_session")
    assert web.client.get(f"/a/{web.account}", follow_redirects=False).status_code == 303


def test_sign_in_refusals(web: World) -> None:
    assert sign_in(web, "not-a-token").status_code == 401
    assert sign_in(web, "").status_code == 401
    no_csrf = web.client.post("/sign-in", data={"token": TOKEN}, follow_redirects=False)
    assert no_csrf.status_code == 403
    web.client.cookies.set("buildsd_session", "tampered")
    assert web.client.get(f"/a/{web.account}", follow_redirects=False).status_code == 303
    assert web.client.post("/sign-out", data={}).status_code == 403


def test_pages_show_builds_triggers_hooks_and_hide_secrets(web: World) -> None:
    t = trigger(web, trigger_name=HOSTILE)
    url = base(web) + f"/triggers/{t['trigger_uuid']}/environment_variables"
    variables = {
        "PLAIN": {"value": "shown", "is_secret": False},
        "API_KEY": {"value": "s3cr3t-never-shown", "is_secret": True},
    }
    ok(web.client.patch(url, json=variables, headers=web.auth))
    hook = {"deploy_hook_name": "nightly", "branch": "main"}
    made = ok(
        web.client.post(base(web) + f"/workers/{TAG}/deploy_hooks", json=hook, headers=web.auth)
    )
    queued = build(web, t["trigger_uuid"], branch="main", commit_hash="abcdef1234")
    sign_in(web)
    workers = web.client.get(f"/a/{web.account}")
    assert workers.status_code == 200 and queued["build_uuid"] in workers.text
    worker = web.client.get(f"/a/{web.account}/workers/{TAG}")
    assert worker.status_code == 200
    assert "abcdef1234" in worker.text and "nightly" in worker.text and "shown" in worker.text
    assert "s3cr3t-never-shown" not in worker.text and "secret (hidden)" in worker.text
    assert made["deploy_hook_uuid"] not in worker.text  # the hook's URL is its secret
    assert HOSTILE not in worker.text and "&lt;script&gt;" in worker.text
    assert web.client.get(f"/a/{web.account}/workers/{TAG}?page=x").status_code == 200
    assert web.client.get(f"/a/{web.account}/workers/{'0' * 32}").status_code == 404
    page = web.client.get(f"/a/{web.account}/builds/{queued['build_uuid']}")
    assert page.status_code == 200 and 'id="cancel"' in page.text and 'id="retry"' in page.text
    assert HOSTILE not in page.text
    assert web.client.get(f"/a/{web.account}/builds/nope").status_code == 404


def test_cancel_and_retry_with_csrf(web: World) -> None:
    t = trigger(web)
    queued = build(web, t["trigger_uuid"], branch="main")
    sign_in(web)
    action = f"/a/{web.account}/builds/{queued['build_uuid']}"
    refused = web.client.post(action + "/cancel", data={"csrf": "forged"})
    assert refused.status_code == 403
    got = ok(web.client.get(base(web) + f"/builds/{queued['build_uuid']}", headers=web.auth))
    assert got["status"] == "queued"
    done = web.client.post(action + "/cancel", data={"csrf": csrf_of(web)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == action
    got = ok(web.client.get(base(web) + f"/builds/{queued['build_uuid']}", headers=web.auth))
    assert got["build_outcome"] == "cancelled"
    stopped = web.client.get(action)
    assert 'id="cancel"' not in stopped.text
    again = web.client.post(action + "/retry", data={"csrf": csrf_of(web)}, follow_redirects=False)
    new_uuid = again.headers["location"].rsplit("/", 1)[1]
    assert new_uuid != queued["build_uuid"]
    assert (
        ok(web.client.get(base(web) + f"/builds/{new_uuid}", headers=web.auth))["status"]
        == "queued"
    )
    ok(web.client.delete(base(web) + f"/triggers/{t['trigger_uuid']}", headers=web.auth))
    gone = web.client.post(action + "/retry", data={"csrf": csrf_of(web)})
    assert gone.status_code == 404


def test_stream_of_a_stopped_build_ends(web: World) -> None:
    t = trigger(web)
    queued = build(web, t["trigger_uuid"])
    ok(web.client.put(base(web) + f"/builds/{queued['build_uuid']}/cancel", headers=web.auth))
    sign_in(web)
    stream = web.client.get(f"/a/{web.account}/builds/{queued['build_uuid']}/stream")
    assert stream.status_code == 200 and "event: end" in stream.text
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert web.client.get(f"/a/{web.account}/builds/nope/stream").status_code == 404


def test_a_read_token_sees_but_cannot_cancel(web: World) -> None:
    t = trigger(web)
    queued = build(web, t["trigger_uuid"])
    sign_in(web, web.new_token("Workers CI Read"))
    page = web.client.get(f"/a/{web.account}/builds/{queued['build_uuid']}")
    assert page.status_code == 200 and 'id="cancel"' not in page.text
    refused = web.client.post(
        f"/a/{web.account}/builds/{queued['build_uuid']}/cancel", data={"csrf": csrf_of(web)}
    )
    assert refused.status_code == 403 and "Workers CI Write" in refused.text
    got = ok(web.client.get(base(web) + f"/builds/{queued['build_uuid']}", headers=web.auth))
    assert got["status"] == "queued"


def test_another_accounts_build_shows_nothing(web: World) -> None:
    other = web.new_account()
    web.grant()
    t = trigger(web)
    mine = build(web, t["trigger_uuid"], commit_hash="feedface99")
    sign_in(web, web.new_token("Workers CI Write", account=other))
    assert web.client.get("/", follow_redirects=False).headers["location"] == f"/a/{other}"
    for path in (
        f"/a/{other}/builds/{mine['build_uuid']}",
        f"/a/{other}/builds/{mine['build_uuid']}/stream",
        f"/a/{web.account}",
        f"/a/{web.account}/builds/{mine['build_uuid']}",
        f"/a/{other}/workers/{TAG}",
    ):
        page = web.client.get(path)
        assert page.status_code == 404, path
        assert "feedface99" not in page.text and mine["build_uuid"] not in page.text
    csrf = csrf_of(web)
    refused = web.client.post(f"/a/{other}/builds/{mine['build_uuid']}/cancel", data={"csrf": csrf})
    assert refused.status_code == 404
    got = ok(web.client.get(base(web) + f"/builds/{mine['build_uuid']}", headers=web.auth))
    assert got["status"] == "queued"


def test_deliveries_page_explains(web: World) -> None:
    setup = connect(web)
    add_trigger(web, setup, trigger_name="Only docs", path_includes=["docs/*"])
    commits = [github_commit(message=HOSTILE, modified=("src/index.ts",))]
    deliver_github(web, github_push("main", commits))
    settle(web)
    sign_in(web)
    page = web.client.get(f"/a/{web.account}/deliveries")
    assert page.status_code == 200 and "Only docs" in page.text and "skipped" in page.text
    assert HOSTILE not in page.text
    assert web.client.get(f"/a/{web.account}/deliveries?page=0").status_code == 200


def test_static_files(web: World) -> None:
    script = web.client.get("/static/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert web.client.get("/static/dashboard.css").status_code == 200
    assert web.client.get("/static/nope.js").status_code == 404


def test_a_token_of_two_accounts_chooses(web: World) -> None:
    other = web.new_account()
    token = web.new_token("Workers CI Read", name="two-accounts")
    policies = json.dumps(
        [policy_for(web.account, ["Workers CI Read"]), policy_for(other, ["Workers CI Read"])]
    )

    async def widen() -> None:
        async with web.services.db.transaction() as conn:
            await conn.run(
                "UPDATE api_tokens SET policies = :p WHERE name = 'two-accounts'", {"p": policies}
            )

    web.run(widen())
    sign_in(web, token)
    page = web.client.get("/", follow_redirects=False)
    assert page.status_code == 200 and other in page.text and web.account in page.text


def test_strict_mode_keeps_the_dashboard(make_world) -> None:
    strict = make_world(strict=True)
    assert strict.client.get("/").status_code == 200  # no Cloudflare path is shadowed


def test_signed_out_pages_go_to_sign_in(web: World) -> None:
    uuid = "6f1c9e3e-1111-4222-8333-944455556666"
    for path in ("", f"/workers/{TAG}", f"/builds/{uuid}", f"/builds/{uuid}/stream", "/deliveries"):
        page = web.client.get(f"/a/{web.account}{path}", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/", path
    posted = web.client.post(f"/a/{web.account}/builds/{uuid}/retry", follow_redirects=False)
    assert posted.status_code == 303


def test_cookies_are_secure_over_https(web: World) -> None:
    tls = TestClient(web.client.app, base_url="https://testserver")  # the app is already up
    page = tls.get("/")
    assert "Secure" in page.headers["set-cookie"]
    assert "Secure" not in web.client.get("/").headers["set-cookie"]
