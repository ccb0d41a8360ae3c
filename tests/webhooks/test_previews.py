"""Worker Previews end to end (issue 13): the IaC provider's flow, pushes making Previews,
their builds, a branch delete, the per-Worker maximum, and every Previews operation's edges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from buildsd.store import builds
from tests.api.flows import TAG, base, build_token, failure, ok
from tests.api.test_worker_builds import create, create_body, settings, worker_triggers
from tests.conftest import World
from tests.webhooks.conftest import accepted, deliver_github, settle, worker_builds
from tests.webhooks.payloads import github_commit, github_push
from tests.webhooks.test_accounts import THEIRS, deliver_to, secret_of, tenant

MESSAGE_12048 = (
    "Cannot enable preview settings while a non-production trigger exists. "
    "Use the migrate_to_previews endpoint instead."
)
UNKNOWN = "6f1c9e3e-1111-4222-8333-944455556666"


def url(world: World, path: str = "") -> str:
    return base(world) + f"/workers/{TAG}" + path


def push(world: World, branch: str, delivery: str, deleted: bool = False) -> None:
    payload = github_push(branch, [github_commit(f"On {branch} {delivery}")], deleted=deleted)
    status = "ignored" if deleted else "accepted"
    accepted(deliver_github(world, payload, delivery=delivery), status)
    settle(world)


def previews_of(world: World) -> dict[str, dict[str, Any]]:
    listed = ok(world.client.get(url(world, "/previews"), headers=world.auth))
    return {p["branch"]: p for p in listed}


def on_previews(world: World) -> dict[str, Any]:
    """The provider's flow up to migrate: create (previews asked, legacy made), 12048, migrate."""
    token = build_token(world)
    base_config = settings(token, deploy_command="npx wrangler versions upload")
    created = create(
        world, create_body(token, previews_enabled=True, previews_base_config=base_config)
    )
    assert created["previews_enabled"] is False  # as live Cloudflare answered
    names = sorted(t["trigger_name"] for t in worker_triggers(world))
    assert names == ["Previews", "Production"]
    refused = world.client.patch(url(world), json={"previews_enabled": True}, headers=world.auth)
    error = failure(refused, 400, 12048)
    assert error["message"] == MESSAGE_12048
    assert ok(world.client.get(url(world), headers=world.auth)) == created  # nothing changed
    migrated = ok(
        world.client.post(
            url(world, "/migrate_to_previews"),
            json={"deploy_command": "npx wrangler preview"},
            headers=world.auth,
        )
    )
    assert migrated["previews_enabled"] is True
    assert migrated["previews_base_config"] == {
        **created["previews_base_config"],
        "deploy_command": "npx wrangler preview",
    }
    # The legacy trigger is gone; the base config is no trigger of the Worker's.
    assert [t["trigger_name"] for t in worker_triggers(world)] == ["Production"]
    # PATCH may now switch previews on (the provider's next call), and migrate is idempotent.
    again = ok(world.client.patch(url(world), json={"previews_enabled": True}, headers=world.auth))
    assert again == migrated
    return dict(migrated)


def test_the_providers_flow_then_pushes_make_previews(world: World) -> None:
    on_previews(world)
    push(world, "feature/a", "d1")
    push(world, "feature/b", "d2")
    push(world, "main", "d3")  # production: no Preview
    push(world, "feature/a", "d4")  # the same branch: the same Preview
    previews = previews_of(world)
    assert sorted(previews) == ["feature/a", "feature/b"]
    a = previews["feature/a"]
    assert set(a) == {
        "preview_id",
        "script_tag",
        "branch",
        "delete_on_branch_delete",
        "build_settings",
        "preview_url",
        "last_deployed_on",
        "latest_build_uuid",
        "created_on",
        "modified_on",
    }
    assert a["script_tag"] == TAG and a["delete_on_branch_delete"] is True
    assert a["build_settings"]["deploy_command"] == "npx wrangler preview"
    assert a["preview_url"] is None and a["last_deployed_on"] is None
    # Their builds run the Preview command and list under the Worker's builds too.
    by_branch: dict[str, list[dict[str, Any]]] = {}
    for build in worker_builds(world):
        by_branch.setdefault(build["build_trigger_metadata"]["branch"], []).append(build)
    assert len(by_branch["feature/a"]) == 2 and len(by_branch["feature/b"]) == 1
    assert by_branch["main"][0]["build_trigger_metadata"]["deploy_command"] == "npx wrangler deploy"
    preview_build = by_branch["feature/b"][0]
    assert preview_build["build_trigger_metadata"]["deploy_command"] == "npx wrangler preview"
    assert a["latest_build_uuid"] == by_branch["feature/a"][0]["build_uuid"]
    listed = ok(
        world.client.get(url(world, f"/previews/{a['preview_id']}/builds"), headers=world.auth)
    )
    assert [b["build_uuid"] for b in listed] == [b["build_uuid"] for b in by_branch["feature/a"]]
    # Paged like every list (D10).
    page = world.client.get(
        url(world, "/previews"), params={"per_page": 1, "page": 2}, headers=world.auth
    )
    assert page.json()["result_info"]["total_count"] == 2
    assert [p["branch"] for p in page.json()["result"]] == ["feature/b"]


def test_patch_a_preview_build_it_and_delete_branches(world: World) -> None:
    on_previews(world)
    push(world, "feature/a", "d1")
    push(world, "feature/b", "d2")
    previews = previews_of(world)
    a, b = previews["feature/a"], previews["feature/b"]
    patched = ok(
        world.client.patch(
            url(world, f"/previews/{b['preview_id']}"),
            json={
                "delete_on_branch_delete": False,
                "build_settings": {
                    "build_command": "npm run build:preview",
                    "environment_variables": {"STAGE": {"value": "b", "is_secret": False}},
                },
            },
            headers=world.auth,
        )
    )
    assert patched["delete_on_branch_delete"] is False
    assert patched["build_settings"]["build_command"] == "npm run build:preview"
    assert patched["build_settings"]["environment_variables"]["STAGE"]["value"] == "b"
    assert patched["modified_on"] >= b["modified_on"]
    assert ok(world.client.get(url(world, f"/previews/{b['preview_id']}"), headers=world.auth)) == (
        patched
    )
    # A manual build of a Preview builds its branch with its settings.
    built = ok(
        world.client.post(
            url(world, f"/previews/{b['preview_id']}/builds"), json={}, headers=world.auth
        )
    )
    assert built["build_trigger_metadata"]["branch"] == "feature/b"
    assert built["build_trigger_metadata"]["build_command"] == "npm run build:preview"
    assert built["build_trigger_metadata"]["build_trigger_source"] == "manual"
    # patch_existing_previews: the base config's change reaches the Previews that exist.
    change = {"previews_base_config": {"root_directory": "/site"}}
    ok(world.client.patch(url(world), json=change, headers=world.auth))
    assert previews_of(world)["feature/a"]["build_settings"]["root_directory"] == "/"
    ok(
        world.client.patch(
            url(world), params={"patch_existing_previews": "true"}, json=change, headers=world.auth
        )
    )
    assert {p["build_settings"]["root_directory"] for p in previews_of(world).values()} == {"/site"}
    # Deleting a branch deletes its Preview when its flag says so.
    push(world, "feature/a", "d5", deleted=True)
    push(world, "feature/b", "d6", deleted=True)
    assert sorted(previews_of(world)) == ["feature/b"]
    failure(
        world.client.get(url(world, f"/previews/{a['preview_id']}"), headers=world.auth), 404, 12000
    )
    # Renaming the tracked branch moves what the Preview builds.
    moved = ok(
        world.client.patch(
            url(world, f"/previews/{b['preview_id']}"),
            json={"branch": "feature/c"},
            headers=world.auth,
        )
    )
    assert moved["branch"] == "feature/c"
    push(world, "feature/c", "d7")
    assert sorted(previews_of(world)) == ["feature/c"]


def test_the_least_recently_deployed_preview_goes_past_the_maximum(
    hooks: Callable[..., World],
) -> None:
    world = hooks(previews_max_per_worker=2)
    on_previews(world)
    push(world, "one", "d1")
    push(world, "two", "d2")
    first = previews_of(world)["one"]
    # "one" deploys: "two" (never deployed) is now the least recently deployed.
    world.run(_succeed(world, first["latest_build_uuid"]))
    deployed = ok(
        world.client.get(url(world, f"/previews/{first['preview_id']}"), headers=world.auth)
    )
    assert deployed["last_deployed_on"] is not None
    assert deployed["preview_url"] == "https://one-my-worker.example.workers.dev"
    push(world, "three", "d3")
    assert sorted(previews_of(world)) == ["one", "three"]


async def _succeed(world: World, build_uuid: str) -> None:
    """The build as a runner leaves a successful Preview deploy (the runner is tested apart)."""
    async with world.services.db.transaction() as conn:
        await conn.run(
            "UPDATE builds SET status = 'stopped', build_outcome = 'success', "
            "stopped_on = created_on, preview_url = :url WHERE build_uuid = :uuid",
            {"url": "https://one-my-worker.example.workers.dev", "uuid": build_uuid},
        )
        await builds.rerender(conn, build_uuid)  # the stored build object follows its row


@pytest.mark.parametrize(
    ("method", "path", "body", "pointer"),
    [
        ("POST", "/migrate_to_previews", {}, ""),
        ("POST", "/migrate_to_previews", {"deploy_command": ""}, "/deploy_command"),
        ("POST", "/migrate_to_previews", {"deploy_command": "x", "nope": 1}, ""),
        ("PATCH", "/previews/{id}", {}, ""),
        ("PATCH", "/previews/{id}", {"branch": "a*"}, "/branch"),
        ("PATCH", "/previews/{id}", {"branch": "main2", "nope": 1}, ""),
        ("PATCH", "/previews/{id}", {"delete_on_branch_delete": "yes"}, "/delete_on_branch_delete"),
        ("PATCH", "/previews/{id}", {"build_settings": {}}, "/build_settings"),
        ("POST", "/previews/{id}/builds", {"commit_hash": "zz"}, "/commit_hash"),
        ("POST", "/previews/{id}/builds", {"seed_repo": {"owner": "o"}}, "/seed_repo"),
    ],
)
def test_bad_bodies_are_12002_and_change_nothing(
    world: World, method: str, path: str, body: Any, pointer: str
) -> None:
    on_previews(world)
    push(world, "feature/a", "d1")
    before = previews_of(world)
    path = path.replace("{id}", before["feature/a"]["preview_id"])
    response = world.client.request(method, url(world, path), json=body, headers=world.auth)
    error = failure(response, 400, 12002)
    if pointer:
        assert error["source"]["pointer"].startswith(pointer)
    assert previews_of(world) == before


def test_a_preview_cannot_take_another_previews_branch(world: World) -> None:
    on_previews(world)
    push(world, "feature/a", "d1")
    push(world, "feature/b", "d2")
    b = previews_of(world)["feature/b"]
    taken = {"branch": "feature/a"}
    response = world.client.patch(
        url(world, f"/previews/{b['preview_id']}"), json=taken, headers=world.auth
    )
    failure(response, 400, 12002)


def test_unknown_ids_and_workers_without_builds(world: World) -> None:
    on_previews(world)
    for method, path in [
        ("GET", f"/previews/{UNKNOWN}"),
        ("PATCH", f"/previews/{UNKNOWN}"),
        ("GET", f"/previews/{UNKNOWN}/builds"),
        ("POST", f"/previews/{UNKNOWN}/builds"),
        ("GET", "/previews/not-a-uuid"),
    ]:
        body = {"delete_on_branch_delete": False} if method == "PATCH" else {}
        response = world.client.request(method, url(world, path), json=body, headers=world.auth)
        failure(response, 404, 12000)
    missing = base(world) + "/workers/" + "f" * 32
    failure(world.client.get(missing + "/previews", headers=world.auth), 404, 12040)
    moved = {"deploy_command": "npx wrangler preview"}
    response = world.client.post(missing + "/migrate_to_previews", json=moved, headers=world.auth)
    failure(response, 404, 12040)


def test_previews_off_makes_no_preview_and_delete_removes_them(world: World) -> None:
    on_previews(world)
    push(world, "feature/a", "d1")
    ok(world.client.patch(url(world), json={"previews_enabled": False}, headers=world.auth))
    push(world, "feature/z", "d2")
    assert sorted(previews_of(world)) == ["feature/a"]
    assert ok(world.client.delete(url(world), headers=world.auth)) == "ok"
    failure(world.client.get(url(world, "/previews"), headers=world.auth), 404, 12040)
    # Set up again: nothing of the old Previews is left.
    again = create(world, create_body(build_token(world, "again")))
    assert again["previews_enabled"] is False
    assert previews_of(world) == {}


def test_another_accounts_push_makes_no_preview_of_ours(world: World) -> None:
    """Two tenants on one repository: a push makes each its own Preview, none crosses."""
    on_previews(world)
    push(world, "feature/a", "d1")
    theirs = world.new_account("theirs")
    their_auth = world.bearer(world.new_token("Workers CI Write", account=theirs))
    theirs_url = base(world, theirs) + f"/workers/{TAG}/previews"
    # Our tag is not theirs: 404, whatever they ask.
    failure(world.client.get(theirs_url, headers=their_auth), 404, 12040)
    ours = previews_of(world)["feature/a"]
    response = world.client.get(theirs_url + f"/{ours['preview_id']}", headers=their_auth)
    failure(response, 404, 12000)


def test_seed_repo_on_a_manual_build_is_validated_and_not_used(world: World) -> None:
    """Cloudflare's "Deploy to Cloudflare" seeding: accepted, checked, builds the trigger's repo."""
    on_previews(world)
    (production,) = worker_triggers(world)
    builds_url = base(world) + f"/triggers/{production['trigger_uuid']}/builds"
    seed = {"provider": "github", "owner": "cloudflare", "repository": "templates", "path": "x"}
    built = ok(
        world.client.post(
            builds_url, json={"branch": "main", "seed_repo": seed}, headers=world.auth
        )
    )
    assert built["build_trigger_metadata"]["repo_name"] == "my-worker"
    for bad in ({"provider": "bitbucket", "owner": "o", "repository": "r"}, {"owner": "o"}):
        response = world.client.post(
            builds_url, json={"branch": "main", "seed_repo": bad}, headers=world.auth
        )
        assert failure(response, 400, 12002)["source"]["pointer"].startswith("/seed_repo")


def test_migrate_again_sets_the_command_and_replaces_a_kept_base_config(world: World) -> None:
    token = build_token(world)
    kept = settings(token, deploy_command="npx wrangler preview --kept")
    create(world, create_body(token, previews_base_config=kept))
    # A legacy non-production trigger made by hand beside the kept base config.
    (production,) = worker_triggers(world)
    legacy = {
        "external_script_id": TAG,
        "repo_connection_uuid": production["repo_connection"]["repo_connection_uuid"],
        "build_token_uuid": token["build_token_uuid"],
        "trigger_name": "Other branches",
        "branch_includes": ["*"],
        "branch_excludes": ["main"],
        "build_command": "npm run legacy",
        "deploy_command": "npx wrangler versions upload",
    }
    ok(world.client.post(base(world) + "/triggers", json=legacy, headers=world.auth))
    moved = {"deploy_command": "npx wrangler preview"}
    first = ok(
        world.client.post(url(world, "/migrate_to_previews"), json=moved, headers=world.auth)
    )
    assert first["previews_base_config"]["build_command"] == "npm run legacy"
    assert [t["trigger_name"] for t in worker_triggers(world)] == ["Production"]
    again = {"deploy_command": "npx wrangler preview --again"}
    second = ok(
        world.client.post(url(world, "/migrate_to_previews"), json=again, headers=world.auth)
    )
    assert second["previews_enabled"] is True
    assert second["previews_base_config"] == {
        **first["previews_base_config"],
        "deploy_command": "npx wrangler preview --again",
    }


def test_two_tenants_on_one_repository_each_get_their_own_previews(world: World) -> None:
    """A hostile tenant connected to the same repository: its pushes make and delete its own
    Previews only, and it cannot read or patch ours."""
    world.grant()
    b = tenant(world)
    on_previews(world)
    b_token = build_token(b)
    create(b, create_body(b_token, script_tag=THEIRS))
    b_url = base(b) + f"/workers/{THEIRS}"
    ok(b.client.patch(b_url, json={"previews_enabled": True}, headers=b.auth))
    mine, theirs = secret_of(world, world.account), secret_of(world, b.account)
    accepted(deliver_to(world, world.account, mine, github_push("feature/x"), delivery="a1"))
    settle(world)
    assert sorted(previews_of(world)) == ["feature/x"]
    assert ok(b.client.get(b_url + "/previews", headers=b.auth)) == []
    ours = previews_of(world)["feature/x"]
    # B's own push of the same branch makes B's Preview; B's branch delete deletes only it.
    accepted(deliver_to(b, b.account, theirs, github_push("feature/x"), delivery="b1"))
    settle(world)
    (their_preview,) = ok(b.client.get(b_url + "/previews", headers=b.auth))
    assert their_preview["preview_id"] != ours["preview_id"]
    gone = github_push("feature/x", deleted=True)
    accepted(deliver_to(b, b.account, theirs, gone, delivery="b2"), "ignored")
    settle(world)
    assert ok(b.client.get(b_url + "/previews", headers=b.auth)) == []
    assert previews_of(world)["feature/x"] == ours
    # Our Preview under B's account, or under our tag with B's token: 404, nothing changed.
    path = f"/workers/{TAG}/previews/{ours['preview_id']}"
    failure(b.client.get(base(b) + path, headers=b.auth), 404, 12000)
    failure(b.client.get(base(world) + path, headers=b.auth), 403, 10000)
    flag = {"delete_on_branch_delete": False}
    failure(b.client.patch(base(b) + path, json=flag, headers=b.auth), 404, 12000)
    assert previews_of(world)["feature/x"] == ours


def test_a_manual_build_of_another_branch_builds_its_preview(world: World) -> None:
    on_previews(world)
    (production,) = worker_triggers(world)
    builds_url = base(world) + f"/triggers/{production['trigger_uuid']}/builds"
    made = ok(world.client.post(builds_url, json={"branch": "feature/m"}, headers=world.auth))
    assert made["trigger"]["trigger_name"] == "Preview: feature/m"
    assert made["build_trigger_metadata"]["deploy_command"] == "npx wrangler preview"
    preview = previews_of(world)["feature/m"]
    assert preview["latest_build_uuid"] == made["build_uuid"]
    again = ok(world.client.post(builds_url, json={"branch": "feature/m"}, headers=world.auth))
    assert again["trigger"]["trigger_uuid"] == made["trigger"]["trigger_uuid"]
    # Its own row, built directly, builds as it is (it is no production trigger).
    own = base(world) + f"/triggers/{made['trigger']['trigger_uuid']}/builds"
    direct = ok(world.client.post(own, json={"branch": "feature/m"}, headers=world.auth))
    assert direct["trigger"]["trigger_uuid"] == made["trigger"]["trigger_uuid"]
    main = ok(world.client.post(builds_url, json={"branch": "main"}, headers=world.auth))
    assert main["trigger"]["trigger_name"] == "Production"
    assert sorted(previews_of(world)) == ["feature/m"]
    # Previews off: a manual build of another branch is production's, as before.
    ok(world.client.patch(url(world), json={"previews_enabled": False}, headers=world.auth))
    other = ok(world.client.post(builds_url, json={"branch": "feature/n"}, headers=world.auth))
    assert other["trigger"]["trigger_name"] == "Production"
