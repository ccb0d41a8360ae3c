"""Every operation of the route table × an id that belongs to another account → 404, revealing
nothing and changing nothing. Generated from the route table, so a new route cannot escape it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from buildsd.api.routes import OPERATIONS
from tests.api.flows import META, base, connection_body, form, ok, trigger_body
from tests.conftest import World

OTHER_TAG = "ab" * 16
# A valid body for each operation that takes one, so validation never answers before lookup.
BODIES: dict[str, Any] = {
    "updateTrigger": {"trigger_name": "renamed"},
    "createManualBuild": {"branch": "main"},
    "upsertEnvironmentVariables": {"X": {"value": "1", "is_secret": False}},
    "createDeployHook": {"deploy_hook_name": "new-hook", "branch": "main"},
    "updateDeployHook": {"deploy_hook_name": "renamed", "branch": "main"},
    "updateWorkerBuild": {"previews_enabled": False},
    "explainTrigger": {"branch": "main", "changed_files": []},
    "patchWorkerScriptSettings": {"logpush": True, "tags": ["mine"]},
    "setWorkerScriptSubdomain": {"enabled": False},
    "migrateToPreviews": {"deploy_command": "npx wrangler preview"},
    "updatePreview": {"delete_on_branch_delete": False},
    "createEventSubscription": {
        "name": "n",
        "url": "https://e.example/",
        "events": ["build.failed"],
    },
}
# A name is the account's own: an upload under another account's Worker name makes (or
# updates) a Worker of the uploader's, with a tag of its own; theirs stays as it was.
OWN_BY_NAME = {"uploadWorkerScript"}
QUERIES: dict[str, dict[str, str]] = {"getWorkerConfigAutofill": {"branch": "main"}}
# Listing by another account's Worker tag is simply empty, as for an unknown tag.
EMPTY_LISTS = {"listTriggersByScript", "listBuildsByScript"}
SCOPED = [
    op
    for op in OPERATIONS
    if op.access.startswith(("builds:", "scripts:"))
    and set(re.findall(r"{([^}]+)}", op.path)) - {"account_id"}
]
SCRIPTS_WRITE = "Workers Scripts Write"


@pytest.fixture
def theirs(world: World) -> dict[str, str]:
    """Account B with one of everything; returns the ids by path-parameter name."""
    account = world.new_account("theirs")
    grant_id = world.grant(account, owner="them")
    auth = world.bearer(world.new_token("Workers CI Write", SCRIPTS_WRITE, account=account))
    url = base(world, account)
    client = world.client
    their_repo = connection_body("99", provider_account_name="them", repo_name="their-repo")
    conn = ok(client.put(url + "/repos/connections", headers=auth, json=their_repo))
    token = ok(
        client.post(
            url + "/tokens",
            headers=auth,
            json={
                "build_token_name": "t",
                "build_token_secret": "x" * 40,
                "cloudflare_token_id": "y",
            },
        )
    )
    body = trigger_body(
        conn,
        token,
        external_script_id=OTHER_TAG,
        trigger_name="t",
        build_command="",
        deploy_command="true",
    )
    trigger = ok(client.post(url + "/triggers", headers=auth, json=body))
    ok(
        client.patch(
            url + f"/triggers/{trigger['trigger_uuid']}/environment_variables",
            headers=auth,
            json={"THEIR_VAR": {"value": "v", "is_secret": False}},
        )
    )
    build = ok(
        client.post(
            url + f"/triggers/{trigger['trigger_uuid']}/builds",
            headers=auth,
            json={"branch": "main"},
        )
    )
    hook = ok(
        client.post(
            url + f"/workers/{OTHER_TAG}/deploy_hooks",
            headers=auth,
            json={"deploy_hook_name": "their-hook", "branch": "main"},
        )
    )
    sub = ok(
        client.post(
            url + "/event_subscriptions",
            headers=auth,
            json={"name": "theirs", "url": "https://hooks.example/x", "events": ["build.failed"]},
        )
    )
    # The Worker the trigger registered (named by its tag), uploaded to: a version, a deployment.
    script = url.removesuffix("/builds") + f"/workers/scripts/{OTHER_TAG}"
    body, kind = form(META)
    uploaded = client.put(script, content=body, headers={**auth, "Content-Type": kind})
    assert ok(uploaded)["tag"] == OTHER_TAG
    deployments = ok(client.get(script + "/deployments", headers=auth))["deployments"]
    # Previews on, and one Preview, as a push of branch `feature` makes it.
    on = {"previews_enabled": True}
    assert ok(client.patch(url + f"/workers/{OTHER_TAG}", headers=auth, json=on))[
        "previews_enabled"
    ]
    preview_id = world.run(_preview_of(world, conn["repo_connection_uuid"]))
    return {
        "preview_id": preview_id,
        "repo_connection_uuid": conn["repo_connection_uuid"],
        "build_token_uuid": token["build_token_uuid"],
        "trigger_uuid": trigger["trigger_uuid"],
        "environment_variable_key": "THEIR_VAR",
        "external_script_id": OTHER_TAG,
        "script_tag": OTHER_TAG,
        "script_name": OTHER_TAG,  # a Worker registered by a trigger is named by its tag
        "deploy_hook_uuid": hook["deploy_hook_uuid"],
        "build_uuid": build["build_uuid"],
        "subscription_id": sub["id"],
        "delivery_id": "1",
        "delivery_uuid": "6f1c9e3e-1111-4222-8333-944455556666",
        "provider_type": "github",
        "provider_account_id": "77",
        "repo_id": "99",
        "grant_id": grant_id,
        "service_name": OTHER_TAG,
        "version_id": deployments[0]["versions"][0]["version_id"],
        "deployment_id": deployments[0]["id"],
        "_account": account,
        "_auth": auth["Authorization"],
    }


async def _preview_of(world: World, repo_connection_uuid: str) -> str:
    async with world.services.db.transaction() as conn:
        (made,) = await world.services.previews.for_push(conn, repo_connection_uuid, "feature")
        row = await conn.one(
            "SELECT preview_id FROM previews WHERE trigger_uuid = :uuid",
            {"uuid": made["trigger_uuid"]},
        )
        assert row is not None
        return str(row["preview_id"])


@pytest.mark.parametrize("op", SCOPED, ids=[op.operation_id for op in SCOPED])
def test_another_accounts_id_is_not_found(world: World, theirs: dict[str, str], op) -> None:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return world.account if name == "account_id" else theirs[name]

    world.token = world.new_token("Workers CI Write", SCRIPTS_WRITE)
    path = re.sub(r"{([^}]+)}", fill, op.path)
    sent: dict[str, Any] = {"json": BODIES.get(op.operation_id, {})}
    if op.upload:  # a valid multipart upload, so the lookup answers and not the parser
        content, kind = form(META)
        sent = {"content": content, "headers": {**world.auth, "Content-Type": kind}}
    if op.operation_id == "createWorkerDeployment":
        sent["json"] = {
            "strategy": "percentage",
            "versions": [{"version_id": theirs["version_id"], "percentage": 100}],
        }
    response = world.client.request(
        op.method,
        path,
        headers=sent.pop("headers", world.auth),
        params=QUERIES.get(op.operation_id, {}),
        **sent,
    )
    if op.operation_id in EMPTY_LISTS:
        assert ok(response) == []
    elif op.operation_id in OWN_BY_NAME:
        assert ok(response)["tag"] != OTHER_TAG
    else:
        assert response.status_code == 404, (op.operation_id, response.text)
        body = response.json()
        # The Workers platform's "This Worker does not exist on your account." (D24)
        codes = (10007,) if op.access.startswith("scripts:") else (12000, 12040)
        assert body["errors"][0]["code"] in codes, body
        assert body["result"] is None
    # Nothing of theirs changed.
    auth = {"Authorization": theirs["_auth"]}
    url = base(world, theirs["_account"])
    build = ok(world.client.get(url + f"/builds/{theirs['build_uuid']}", headers=auth))
    assert build["status"] == "queued" and build["trigger"]["trigger_name"] == "t"
    variables = ok(
        world.client.get(
            url + f"/triggers/{theirs['trigger_uuid']}/environment_variables", headers=auth
        )
    )
    assert set(variables) == {"THEIR_VAR"}
    assert len(ok(world.client.get(url + "/tokens", headers=auth))) == 1
    hooks = ok(world.client.get(url + f"/workers/{OTHER_TAG}/deploy_hooks", headers=auth))
    assert [h["deploy_hook_name"] for h in hooks] == ["their-hook"]
    script = url.removesuffix("/builds") + f"/workers/scripts/{OTHER_TAG}"
    shown = ok(world.client.get(script + "/settings", headers=auth))
    assert shown["logpush"] is False and shown["tags"] == []
    assert ok(world.client.get(script + "/subdomain", headers=auth))["enabled"] is True
    versions = ok(world.client.get(script + "/versions", headers=auth))["items"]
    assert [v["id"] for v in versions] == [theirs["version_id"]]
    deployments = ok(world.client.get(script + "/deployments", headers=auth))["deployments"]
    assert [d["id"] for d in deployments] == [theirs["deployment_id"]]
    config = ok(world.client.get(url + f"/workers/{OTHER_TAG}", headers=auth))
    assert config["previews_enabled"] is True
    preview = ok(
        world.client.get(
            url + f"/workers/{OTHER_TAG}/previews/{theirs['preview_id']}", headers=auth
        )
    )
    assert preview["branch"] == "feature" and preview["delete_on_branch_delete"] is True
    assert preview["latest_build_uuid"] is None
