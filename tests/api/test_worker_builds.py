"""Worker build configuration (spec §1b, §9): a view over a Worker's connection and triggers."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import msgspec
import pytest

from buildsd.errors import AlreadyExists
from buildsd.store import previews as preview_store
from buildsd.wire import CreateWorkerBuildRequest
from tests.api.flows import TAG, base, build, build_token, connection, failure, ok, trigger
from tests.api.test_deploy_hooks import warm_up
from tests.conftest import World

SECRET = "s3cr3t-value-that-must-never-leak"
UNKNOWN_UUID = "6f1c9e3e-1111-4222-8333-944455556666"
NO_CONFIGURATION = (
    "No build configuration associated with that script tag was found for this account"
)


def settings(token: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "build_command": "npm run build",
        "deploy_command": "npx wrangler deploy",
        "build_token_uuid": token["build_token_uuid"],
        **kw,
    }


def create_body(token: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "script_tag": TAG,
        "git_repository": {
            "provider_type": "github",
            "provider_account_id": "41612145",
            "provider_account_name": "octo-org",
            "repo_id": "562843111",
            "repo_name": "my-worker",
            "branch": "main",
        },
        "production_settings": settings(token),
        **kw,
    }


def url(world: World, tag: str = TAG, account: str | None = None) -> str:
    return base(world, account) + f"/workers/{tag}"


def create(world: World, body: dict[str, Any]) -> dict[str, Any]:
    response = world.client.post(base(world) + "/workers", json=body, headers=world.auth)
    assert response.status_code == 201, response.text
    return dict(response.json()["result"])


def worker_triggers(world: World, tag: str = TAG) -> list[dict[str, Any]]:
    return list(ok(world.client.get(url(world, tag) + "/triggers", headers=world.auth)))


def test_create_is_201_and_makes_a_connection_and_a_production_trigger(world: World) -> None:
    token = build_token(world)
    result = create(world, create_body(token))
    assert result == {
        "script_tag": TAG,
        "git_repository": {
            "provider_type": "github",
            "provider_account_id": "41612145",
            "provider_account_name": "octo-org",
            "repo_id": "562843111",
            "repo_name": "my-worker",
            "branch": "main",
            "grant_id": None,
        },
        "production_settings": {
            **settings(token),
            "root_directory": "/",
            "path_includes": ["*"],
            "path_excludes": [],
            "build_caching_enabled": True,
            "environment_variables": {},
        },
        "previews_enabled": False,
        # Always present (issue 13): what switching Previews on would make.
        "previews_base_config": {
            **settings(token),
            "deploy_command": "npx wrangler preview",
            "root_directory": "/",
            "path_includes": ["*"],
            "path_excludes": [],
            "build_caching_enabled": True,
            "environment_variables": {},
        },
    }
    assert ok(world.client.get(url(world), headers=world.auth)) == result
    (made,) = worker_triggers(world)
    assert made["trigger_name"] == "Production"
    assert (made["branch_includes"], made["branch_excludes"]) == (["main"], [])
    # The connection is the one a PUT of the same repository gives (D5).
    assert (
        made["repo_connection"]["repo_connection_uuid"] == connection(world)["repo_connection_uuid"]
    )


def test_create_with_previews_and_variables(world: World) -> None:
    token = build_token(world)
    variables = {
        "NODE_ENV": {"value": "production", "is_secret": False},
        "API_KEY": {"value": SECRET, "is_secret": True},
    }
    body = create_body(
        token,
        production_settings=settings(
            token,
            root_directory="/apps/site",
            path_includes=["src/*"],
            path_excludes=["*.md"],
            build_caching_enabled=False,
            environment_variables=variables,
        ),
        previews_enabled=True,
        previews_base_config=settings(
            token,
            deploy_command="npx wrangler versions upload",
            environment_variables={"STAGE": {"value": "preview", "is_secret": False}},
        ),
    )
    result = create(world, body)
    production = result["production_settings"]
    assert production["root_directory"] == "/apps/site"
    assert (production["path_includes"], production["path_excludes"]) == (["src/*"], ["*.md"])
    assert production["build_caching_enabled"] is False
    assert production["environment_variables"]["API_KEY"]["value"] is None
    assert production["environment_variables"]["API_KEY"]["is_secret"] is True
    assert production["environment_variables"]["NODE_ENV"]["value"] == "production"
    # Cloudflare's recorded quirk: a legacy trigger, and previews_enabled false (issue 13).
    assert result["previews_enabled"] is False
    previews = result["previews_base_config"]
    assert previews["deploy_command"] == "npx wrangler versions upload"
    assert set(previews["environment_variables"]) == {"STAGE"}
    by_name = {t["trigger_name"]: t for t in worker_triggers(world)}
    assert by_name["Previews"]["branch_includes"] == ["*"]
    assert by_name["Previews"]["branch_excludes"] == ["main"]


def test_previews_without_a_base_config_build_as_production(world: World) -> None:
    token = build_token(world)
    result = create(world, create_body(token, previews_enabled=True))
    assert result["previews_base_config"] == result["production_settings"]


def test_a_base_config_with_previews_off_is_kept_for_later(world: World) -> None:
    # What an IaC provider sends: both settings objects, previews off.
    token = build_token(world)
    given = settings(token, deploy_command="npx wrangler preview --x")
    body = create_body(token, previews_enabled=False, previews_base_config=given)
    result = create(world, body)
    assert result["previews_enabled"] is False
    assert result["previews_base_config"]["deploy_command"] == "npx wrangler preview --x"
    # The row holding it is no trigger of the Worker's.
    assert [t["trigger_name"] for t in worker_triggers(world)] == ["Production"]
    on = ok(world.client.patch(url(world), json={"previews_enabled": True}, headers=world.auth))
    assert on["previews_enabled"] is True
    assert on["previews_base_config"] == result["previews_base_config"]


def test_create_refuses_a_worker_that_has_a_configuration(world: World) -> None:
    token = build_token(world)
    create(world, create_body(token))
    response = world.client.post(
        base(world) + "/workers", json=create_body(token), headers=world.auth
    )
    failure(response, 409, 12049)
    assert len(worker_triggers(world)) == 1
    # A trigger made through the triggers API is a configuration too.
    other = "ab" * 16
    trigger(world, external_script_id=other)
    body = create_body(token, script_tag=other)
    failure(world.client.post(base(world) + "/workers", json=body, headers=world.auth), 409, 12049)


def test_unknown_build_token_is_404_and_writes_nothing(world: World) -> None:
    token = build_token(world)
    for body in (
        create_body({"build_token_uuid": UNKNOWN_UUID}),
        create_body(
            token,
            previews_enabled=True,
            previews_base_config=settings({"build_token_uuid": UNKNOWN_UUID}),
        ),
    ):
        response = world.client.post(base(world) + "/workers", json=body, headers=world.auth)
        failure(response, 404, 12000)
        assert worker_triggers(world) == []
        failure(world.client.get(url(world), headers=world.auth), 404, 12040)
    listed = world.client.get(base(world) + "/repos/connections", headers=world.auth).json()
    assert listed["result"] == []


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def _with(body: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


BAD_CREATES = [
    (lambda b: _without(b, "script_tag"), ""),
    (lambda b: _with(b, "my-worker", "script_tag"), "/script_tag"),
    (lambda b: _without(b, "git_repository"), ""),
    (lambda b: _without(b, "production_settings"), ""),
    (lambda b: _without(b, "git_repository", "repo_id"), "/git_repository"),
    (
        lambda b: _with(b, "origin", "git_repository", "provider_type"),
        "/git_repository/provider_type",
    ),
    (
        lambda b: _with(b, "gitlab_internal", "git_repository", "provider_type"),
        "/git_repository/grant_id",
    ),
    (lambda b: _with(b, "", "git_repository", "branch"), "/git_repository/branch"),
    (lambda b: _with(b, "release/*", "git_repository", "branch"), "/git_repository/branch"),
    (lambda b: _with(b, "x", "git_repository", "url"), "/git_repository"),
    (lambda b: _with(b, "../x", "git_repository", "repo_name"), "/git_repository/repo_name"),
    (
        lambda b: _with(b, "a%2fb", "git_repository", "provider_account_name"),
        "/git_repository/provider_account_name",
    ),
    (lambda b: _without(b, "production_settings", "deploy_command"), "/production_settings"),
    (lambda b: _without(b, "production_settings", "build_token_uuid"), "/production_settings"),
    (
        lambda b: _with(b, "yes", "production_settings", "build_caching_enabled"),
        "/production_settings/build_caching_enabled",
    ),
    (
        lambda b: _with(
            b, {"1BAD": {"value": "x"}}, "production_settings", "environment_variables"
        ),
        "",  # msgspec names no path for a bad map key
    ),
    (
        lambda b: _with(
            b, {"NEW": {"value": None}}, "production_settings", "environment_variables"
        ),
        "/production_settings/environment_variables/NEW/value",
    ),
    (lambda b: _with(b, "yes", "previews_enabled"), "/previews_enabled"),
    (lambda b: _with(b, {}, "previews_base_config"), "/previews_base_config"),
    (lambda b: _with(b, 1, "unknown"), ""),
]


BAD_CREATE_IDS = [
    "no script_tag",
    "a name for a tag",
    "no git_repository",
    "no production_settings",
    "no repo_id",
    "provider origin",
    "gitlab_internal without grant",
    "empty branch",
    "branch pattern",
    "unknown repository field",
    "repo_name leaving its URL segment",
    "provider_account_name with an escape",
    "no deploy_command",
    "no build_token_uuid",
    "caching not a boolean",
    "bad variable name",
    "new variable without value",
    "previews_enabled not a boolean",
    "empty previews_base_config",
    "unknown field",
]


@pytest.mark.parametrize(("change", "pointer"), BAD_CREATES, ids=BAD_CREATE_IDS)
def test_bad_create_bodies_are_12002_and_write_nothing(world: World, change, pointer: str) -> None:
    body = change(create_body(build_token(world)))
    error = failure(
        world.client.post(base(world) + "/workers", json=body, headers=world.auth), 400, 12002
    )
    if pointer:
        assert error["source"]["pointer"] == pointer
    assert worker_triggers(world) == []


def test_gitlab_internal_with_a_grant(world: World) -> None:
    body = create_body(build_token(world))
    body["git_repository"].update(provider_type="gitlab_internal", grant_id="grant-1")
    assert create(world, body)["git_repository"]["provider_type"] == "gitlab_internal"


def test_get_unknown_or_another_accounts_worker_is_12040(world: World) -> None:
    create(world, create_body(build_token(world)))
    for path in (url(world, "f" * 32), url(world, "my-worker")):
        error = failure(world.client.get(path, headers=world.auth), 404, 12040)
        assert error["message"] == NO_CONFIGURATION
    other = world.new_account()
    theirs = world.bearer(world.new_token(account=other))
    their_url = url(world, account=other)
    failure(world.client.get(their_url, headers=theirs), 404, 12040)
    failure(
        world.client.patch(their_url, json={"previews_enabled": True}, headers=theirs), 404, 12040
    )
    failure(world.client.delete(their_url, headers=theirs), 404, 12040)
    assert ok(world.client.get(url(world), headers=world.auth))["script_tag"] == TAG


def test_create_for_another_accounts_worker_is_404(world: World) -> None:
    other = world.new_account()
    their_tag = world.run(world.services.workers.create(other, "theirs"))
    body = create_body(build_token(world), script_tag=their_tag)
    failure(world.client.post(base(world) + "/workers", json=body, headers=world.auth), 404, 12000)


# --- PATCH ---------------------------------------------------------------------------------------


def test_patch_branch_and_production_settings(world: World) -> None:
    token = build_token(world)
    variables = {
        "KEEP": {"value": "1", "is_secret": False},
        "DROP": {"value": "2", "is_secret": False},
        "API_KEY": {"value": SECRET, "is_secret": True},
    }
    create(
        world,
        create_body(
            token,
            production_settings=settings(token, environment_variables=variables),
            previews_enabled=True,
        ),
    )
    second = build_token(world, "second")
    patch = {
        "git_repository": {"branch": "production"},
        "production_settings": {
            "build_command": "make",
            "build_token_uuid": second["build_token_uuid"].upper(),
            "environment_variables": {"DROP": None, "NEW": {"value": "3", "is_secret": False}},
        },
    }
    result = ok(
        world.client.patch(
            url(world), params={"patch_existing_previews": "true"}, json=patch, headers=world.auth
        )
    )
    assert result["git_repository"]["branch"] == "production"
    production = result["production_settings"]
    assert production["build_command"] == "make"
    assert production["deploy_command"] == "npx wrangler deploy"
    assert production["build_token_uuid"] == second["build_token_uuid"]
    assert set(production["environment_variables"]) == {"API_KEY", "KEEP", "NEW"}
    assert production["environment_variables"]["API_KEY"]["is_secret"] is True
    # Previews keep their own settings and now exclude the new production branch.
    assert result["previews_base_config"]["build_command"] == "npm run build"
    by_name = {t["trigger_name"]: t for t in worker_triggers(world)}
    assert by_name["Production"]["branch_includes"] == ["production"]
    assert by_name["Previews"]["branch_excludes"] == ["production"]
    assert ok(world.client.get(url(world), headers=world.auth)) == result


def test_patch_turns_previews_on_and_off(world: World) -> None:
    token = build_token(world)
    variables = {"API_KEY": {"value": SECRET, "is_secret": True}}
    create(
        world,
        create_body(token, production_settings=settings(token, environment_variables=variables)),
    )
    # A base config while previews stay off (and none kept) has nothing to apply to.
    off = ok(
        world.client.patch(
            url(world), json={"previews_base_config": {"build_command": "x"}}, headers=world.auth
        )
    )
    assert off["previews_enabled"] is False
    assert off["previews_base_config"]["build_command"] == "npm run build"

    on = ok(
        world.client.patch(
            url(world),
            json={"previews_enabled": True, "previews_base_config": {"deploy_command": "preview"}},
            headers=world.auth,
        )
    )
    assert on["previews_enabled"] is True
    previews = on["previews_base_config"]
    assert previews["deploy_command"] == "preview"
    assert previews["build_command"] == on["production_settings"]["build_command"]
    # Production's variables are copied, secrets staying secret.
    assert previews["environment_variables"]["API_KEY"]["is_secret"] is True
    # Previews proper: no legacy trigger is made.
    assert [t["trigger_name"] for t in worker_triggers(world)] == ["Production"]
    config = world.run(_config(world))
    assert config is not None and config["previews_enabled"]
    plain = world.run(_plain_variables(world, config["trigger_uuid"]))
    assert plain == {"API_KEY": (SECRET, True)}

    again = ok(world.client.patch(url(world), json={"previews_enabled": True}, headers=world.auth))
    assert again == on  # already on: nothing new
    off = ok(world.client.patch(url(world), json={"previews_enabled": False}, headers=world.auth))
    assert off["previews_enabled"] is False
    assert off["previews_base_config"] == on["previews_base_config"]  # kept


def test_legacy_previews_are_turned_off_by_removing_their_trigger(world: World) -> None:
    token = build_token(world)
    create(world, create_body(token, previews_enabled=True))
    (legacy,) = [t for t in worker_triggers(world) if t["trigger_name"] == "Previews"]
    # Until migrated, previews_base_config is the legacy trigger's, and a PATCH edits it.
    change = {"previews_base_config": {"build_command": "npm run legacy"}}
    patched = ok(world.client.patch(url(world), json=change, headers=world.auth))
    assert patched["previews_base_config"]["build_command"] == "npm run legacy"
    assert patched["previews_enabled"] is False
    queued = build(world, legacy["trigger_uuid"], branch="feature")
    off = ok(world.client.patch(url(world), json={"previews_enabled": False}, headers=world.auth))
    assert off["previews_enabled"] is False
    assert [t["trigger_name"] for t in worker_triggers(world)] == ["Production"]
    stopped = ok(
        world.client.get(base(world) + f"/builds/{queued['build_uuid']}", headers=world.auth)
    )
    assert stopped["build_outcome"] == "cancelled"


async def _config(world: World) -> Any:
    async with world.services.db.connection() as conn:
        return await preview_store.config(conn, world.account, TAG)


async def _plain_variables(world: World, trigger_uuid: str) -> dict[str, tuple[str, bool]]:
    async with world.services.db.connection() as conn:
        return await world.services.triggers.plain_variables(conn, trigger_uuid)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, ""),
        ({"git_repository": {}}, "/git_repository"),
        ({"git_repository": {"branch": ""}}, "/git_repository/branch"),
        ({"git_repository": {"branch": "a*"}}, "/git_repository/branch"),
        ({"git_repository": {"repo_id": "1"}}, "/git_repository"),
        ({"production_settings": {}}, "/production_settings"),
        ({"production_settings": {"nope": 1}}, "/production_settings"),
        ({"production_settings": {"path_includes": "*"}}, "/production_settings/path_includes"),
        (
            {"production_settings": {"environment_variables": {"NEW": {"value": None}}}},
            "/production_settings/environment_variables/NEW/value",
        ),
        ({"previews_enabled": "on"}, "/previews_enabled"),
        ({"script_tag": TAG}, ""),
        ([], ""),
    ],
)
def test_bad_patch_bodies_are_12002_and_write_nothing(
    world: World, body: Any, pointer: str
) -> None:
    created = create(world, create_body(build_token(world)))
    error = failure(world.client.patch(url(world), json=body, headers=world.auth), 400, 12002)
    if pointer:
        assert error["source"]["pointer"] == pointer
    assert ok(world.client.get(url(world), headers=world.auth)) == created


def test_patch_with_an_unknown_build_token_is_404_and_writes_nothing(world: World) -> None:
    created = create(world, create_body(build_token(world)))
    body = {
        "git_repository": {"branch": "other"},
        "production_settings": {"build_token_uuid": UNKNOWN_UUID},
    }
    failure(world.client.patch(url(world), json=body, headers=world.auth), 404, 12000)
    assert ok(world.client.get(url(world), headers=world.auth)) == created


def test_patch_and_delete_of_an_unknown_worker_are_12040(world: World) -> None:
    missing = url(world, "f" * 32)
    failure(
        world.client.patch(missing, json={"previews_enabled": True}, headers=world.auth), 404, 12040
    )
    failure(world.client.delete(missing, headers=world.auth), 404, 12040)


# --- DELETE --------------------------------------------------------------------------------------


def test_delete_removes_every_trigger_and_cancels_their_builds(world: World) -> None:
    token = build_token(world)
    create(world, create_body(token, previews_enabled=True))
    production = next(t for t in worker_triggers(world) if t["trigger_name"] == "Production")
    queued = build(world, production["trigger_uuid"])
    assert ok(world.client.delete(url(world), headers=world.auth)) == "ok"
    assert worker_triggers(world) == []
    failure(world.client.get(url(world), headers=world.auth), 404, 12040)
    failure(world.client.delete(url(world), headers=world.auth), 404, 12040)
    stopped = ok(
        world.client.get(base(world) + f"/builds/{queued['build_uuid']}", headers=world.auth)
    )
    assert (stopped["status"], stopped["build_outcome"]) == ("stopped", "cancelled")
    # The Worker can be set up again.
    assert create(world, create_body(token))["previews_enabled"] is False


def test_auth_failures(world: World) -> None:
    token = build_token(world)
    created = create(world, create_body(token))
    reader = world.bearer(world.new_token("Workers CI Read"))
    stranger = world.bearer(world.new_token(account=world.new_account()))
    calls: list[tuple[str, str, Any]] = [
        ("GET", url(world), None),
        ("POST", base(world) + "/workers", create_body(token)),
        ("PATCH", url(world), {"previews_enabled": True}),
        ("DELETE", url(world), None),
    ]
    for method, path, body in calls:
        kw: dict[str, Any] = {} if body is None else {"json": body}
        failure(world.client.request(method, path, **kw), 401, 12005)
        failure(
            world.client.request(method, path, headers=world.bearer("x" * 40), **kw), 401, 12006
        )
        failure(world.client.request(method, path, headers=stranger, **kw), 403, 10000)
        if method == "GET":
            assert ok(world.client.request(method, path, headers=reader)) == created
        else:
            failure(world.client.request(method, path, headers=reader, **kw), 403, 10000)
    assert ok(world.client.get(url(world), headers=world.auth)) == created


def test_concurrent_creates_make_one_configuration(world: World) -> None:
    # A Worker that exists already: its row, not its first insert, must serialise the creates.
    tag = world.run(world.services.workers.create(world.account, "site"))
    body = msgspec.convert(
        create_body(build_token(world), script_tag=tag), CreateWorkerBuildRequest
    )

    async def together() -> list[Any]:
        calls = [world.services.worker_builds.create(world.account, body) for _ in range(4)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    warm_up(world)
    answers = world.run(together())
    assert sum(isinstance(answer, AlreadyExists) for answer in answers) == 3
    assert len(worker_triggers(world, tag)) == 1
