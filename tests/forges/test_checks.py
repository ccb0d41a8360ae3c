"""GitHub check runs through a GitHub App (issue 16): one per Worker with Cloudflare's text,
created then updated in place, the App's JWT traded for a cached installation token."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from buildsd.errors import InvalidRequestBody
from tests.conftest import World
from tests.forges.conftest import (
    APP_ID,
    SHA,
    open_pull_request,
    pem_of,
    queue_build,
    run_build,
    set_app,
    settled,
)
from tests.forges.fakeforge import Forge

PREVIEW = "https://main-my-worker.example.workers.dev"
VERSION = "7a1d3c1e-2222-4333-8444-955566667777"
RUNS = "/repos/octo-org/my-worker/check-runs"


def _runs(forge: Forge) -> list:
    return [s for s in forge.ok() if "/check-runs" in s.path]


def test_one_check_run_per_build_created_then_updated_in_place(
    forge_world, app_forge: Forge, app_key
):
    world = forge_world()
    assert set_app(world, app_forge, app_key) == "github"
    build_uuid = queue_build(world)
    open_pull_request(world, build_uuid, "https://github.com/octo-org/my-worker/pull/7")
    run_build(world, "success", version_id=VERSION, preview_url=PREVIEW)
    app_forge.wait(3, method="PATCH")  # check run updated 3 times, the comment edited 3 times
    assert {u["state"] for u in settled(world, build_uuid)} == {"delivered"}
    seen = app_forge.ok()
    assert not [s for s in seen if "/statuses/" in s.path]  # an App: check runs instead
    runs = _runs(app_forge)
    assert runs[0].method == "POST" and runs[0].path == RUNS
    first = runs[0].body
    assert first["head_sha"] == SHA and first["external_id"] == build_uuid
    assert first["status"] == "queued" and first["name"].startswith("Workers Builds: ")
    assert {s.method for s in runs[1:]} == {"PATCH"}
    assert len({s.path for s in runs[1:]}) == 1  # one check run, edited in place
    assert runs[1].path.startswith(RUNS + "/") and "head_sha" not in runs[1].body
    assert [s.body["status"] for s in runs] == ["queued", "in_progress", "in_progress", "completed"]
    last = runs[-1].body
    assert last["conclusion"] == "success" and last["details_url"] == PREVIEW
    assert last["output"]["title"] == "Build succeeded" and last["completed_at"].endswith("Z")
    for text in ("Build ID", build_uuid, "Script", "Version ID", VERSION, "Preview URL", PREVIEW):
        assert text in last["output"]["summary"]
    comments = [s for s in seen if "/comments" in s.path]
    assert comments[0].method == "POST" and {s.method for s in comments[1:]} == {"PATCH"}
    # One installation looked up and one token traded (cached), used for every request.
    assert app_forge.issued == ["ghs_installation-token-0001"]
    lookups = [s for s in app_forge.seen if s.path == "/repos/octo-org/my-worker/installation"]
    assert len(lookups) == 1
    assert {s.headers["authorization"] for s in seen} == {"Bearer ghs_installation-token-0001"}


@pytest.mark.parametrize(
    ("outcome", "conclusion", "title"),
    [
        ("fail", "failure", "Build failed"),
        ("cancelled", "cancelled", "Build cancelled"),
        ("terminated", "failure", "Build terminated (timeout or lost runner)"),
    ],
)
def test_a_stopped_builds_conclusion(forge_world, app_forge, app_key, outcome, conclusion, title):
    world = forge_world()
    set_app(world, app_forge, app_key, installation="4242")  # given: never looked up
    build_uuid = queue_build(world)
    run_build(world, outcome)
    app_forge.wait(4)
    settled(world, build_uuid)
    last = _runs(app_forge)[-1].body
    assert (last["status"], last["conclusion"], last["output"]["title"]) == (
        "completed",
        conclusion,
        title,
    )
    assert not [s for s in app_forge.seen if s.path.endswith("/installation")]


def test_a_second_build_gets_its_own_check_run(forge_world, app_forge, app_key):
    world = forge_world()
    set_app(world, app_forge, app_key)
    first = queue_build(world)
    run_build(world)
    app_forge.wait(4)
    settled(world, first)
    second = queue_build(world)
    run_build(world)
    app_forge.wait(8)
    settled(world, second)
    made = [s for s in _runs(app_forge) if s.method == "POST"]
    assert [s.body["external_id"] for s in made] == [first, second]


def test_a_revoked_token_is_traded_anew_and_the_update_retried(forge_world, app_forge, app_key):
    world = forge_world()
    set_app(world, app_forge, app_key)
    build_uuid = queue_build(world)
    app_forge.wait(1)
    app_forge.revoked.add(app_forge.issued[0])  # e.g. the installation's token revoked
    run_build(world)
    listed = settled(world, build_uuid)
    assert {u["state"] for u in listed} == {"delivered"}
    assert listed[1]["attempts"] == 2  # refused once with the old token, then sent
    assert app_forge.issued[1:] == ["ghs_installation-token-0002"]


def test_a_wrong_key_is_refused_by_github_and_given_up_without_leaking(
    forge_world, app_forge, caplog
):
    world = forge_world()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    set_app(world, app_forge, other)  # not the App's key: its JWT does not verify
    build_uuid = queue_build(world)
    listed = settled(world, build_uuid)
    assert listed[0]["state"] == "failed" and "HTTP 401" in listed[0]["last_error"]
    assert app_forge.issued == [] and _runs(app_forge) == []


def test_the_app_not_installed_on_the_repository_gives_up(forge_world, app_forge, app_key):
    world = forge_world()
    set_app(world, app_forge, app_key, installation="999")  # the fake's is 4242
    build_uuid = queue_build(world)
    listed = settled(world, build_uuid)
    assert listed[0]["state"] == "failed" and "HTTP 404" in listed[0]["last_error"]


def test_an_app_needs_a_number_an_rsa_key_and_an_http_url(forge_world, app_key):
    world = forge_world()
    outbox = world.services.outbox
    pem = pem_of(app_key)
    for app_id, key, installation, url, said in (
        ("abc", pem, None, None, "App ID must be a number"),
        (APP_ID, "-----BEGIN PRIVATE KEY-----\nnope\n", None, None, "not a PEM RSA private key"),
        (APP_ID, pem, "12x", None, "installation ID must be a number"),
        (APP_ID, pem, None, "ftp://github.example", "http(s) URL"),
    ):
        with pytest.raises(InvalidRequestBody) as raised:
            world.run(outbox.set_app(world.account, app_id, key, installation, url))
        told = repr(raised.value.chain)
        assert said in told and pem.splitlines()[5] not in told
    assert world.run(outbox.credentials(world.account)) == []
    # Stored encrypted: the key's text is nowhere in the database.
    world.run(outbox.set_app(world.account, APP_ID, pem, None, None))

    async def stored() -> str:
        async with world.services.db.connection() as conn:
            rows = await conn.all("SELECT token, app_id, api_url FROM forge_credentials")
        return repr(rows)

    text = world.run(stored())
    assert pem.splitlines()[5] not in text and APP_ID in text and "api.github.com" in text


def test_only_an_rsa_key_signs_an_app_jwt(forge_world):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    world = forge_world()
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(InvalidRequestBody) as raised:
        world.run(world.services.outbox.set_app(world.account, APP_ID, ec_pem, None, None))
    assert "not a PEM RSA private key" in repr(raised.value.chain)


def test_an_unreadable_expiry_is_taken_for_githubs_hour():
    from buildsd.forges.github_app import _expiry

    assert abs(_expiry("2026-12-03T10:00:00Z") - 1796292000.0) < 1
    assert 3500 < _expiry("soon") - time.time() <= 3600


def test_another_account_naming_my_app_never_borrows_my_token(forge_world, app_forge, app_key):
    world = forge_world()
    world.grant()
    other = world.new_account("b")
    world.grant(other)
    b = World(world.client, world.services, other, world.new_token(account=other))
    set_app(world, app_forge, app_key, installation="4242")
    mine = queue_build(world)
    assert {u["state"] for u in settled(world, mine)} == {"delivered"}
    assert app_forge.issued == ["ghs_installation-token-0001"]  # cached now
    # B names the same App and installation, with a key that is not the App's.
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    outbox = world.services.outbox
    world.run(outbox.set_app(other, APP_ID, pem_of(wrong), "4242", app_forge.url))
    theirs = queue_build(b, external_script_id="b2" * 16)
    [update] = settled(b, theirs)
    assert update["state"] == "failed" and "HTTP 401" in update["last_error"]
    assert app_forge.issued == ["ghs_installation-token-0001"]  # none traded for B
    assert all(s.body["external_id"] != theirs for s in _runs(app_forge))
