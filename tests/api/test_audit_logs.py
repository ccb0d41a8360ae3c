"""The audit log (issue 6): every write recorded with its actor, credential, action, resource,
time and outcome, served at GET /accounts/{id}/audit_logs in Cloudflare's shape."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from buildsd import clock
from buildsd.api.routes import OPERATIONS
from buildsd.services.administration import ADMIN_EMAIL
from buildsd.services.audit import AuditEvent
from tests.api.flows import (
    BUILD_TOKEN_SECRET,
    TAG,
    base,
    build,
    build_token,
    connection,
    connection_body,
    failure,
    ok,
    trigger,
    trigger_body,
)
from tests.conftest import KNOWN_SECRETS, World

SECRET = "s3cr3t-value-that-must-never-leak"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN = "6f1c9e3e-1111-4222-8333-944455556666"
CLIENT_IP = "testclient"  # what Starlette's TestClient puts in the ASGI scope


def url(world: World, account: str | None = None) -> str:
    return f"/client/v4/accounts/{account or world.account}/audit_logs"


def listing(
    world: World, headers: dict[str, str] | None = None, **params: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    response = world.client.get(url(world), params=params, headers=headers or world.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    return body["result"], body["result_info"]


def entries(world: World, **params: Any) -> list[dict[str, Any]]:
    """Every entry of the account, oldest first."""
    result, info = listing(world, direction="asc", per_page=1000, **params)
    assert info["count"] == len(result) == info["total_count"]
    return result


def token_id(world: World, name: str = "bootstrap") -> str:
    rows = world.run(world.services.admin.list_tokens(world.account))
    return str(next(row.id for row in rows if row.name == name))


def admin_id(world: World) -> str:
    async def find() -> str:
        async with world.services.db.connection() as conn:
            row = await conn.one("SELECT id FROM users WHERE email = :e", {"e": ADMIN_EMAIL})
        return str(row["id"])

    return str(world.run(find()))


def raw_rows(world: World) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with world.services.db.connection() as conn:
            return [dict(row) for row in await conn.all("SELECT * FROM audit_logs")]

    return list(world.run(read()))


def summary(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        entry["metadata"]["operation"],
        entry["action"]["type"],
        entry["action"]["result"],
        entry["resource"]["type"],
        entry["metadata"]["status"],
    )


def new_hook(world: World, tag: str) -> dict[str, Any]:
    """A deploy hook of the Worker a trigger registered (named by its tag)."""
    hooks = base(world) + f"/workers/{tag}/deploy_hooks"
    body = {"deploy_hook_name": "deploy main", "branch": "main"}
    return dict(ok(world.client.post(hooks, json=body, headers=world.auth)))


def fire(world: World, hook_uuid: str) -> Any:
    return world.client.post(f"/client/v4/workers/builds/deploy_hooks/{hook_uuid}")


# --- what is recorded ----------------------------------------------------------------------------


def test_writes_of_every_kind_are_recorded(world: World) -> None:
    started = clock.now()
    conn = connection(world)
    token = build_token(world)
    made = ok(
        world.client.post(
            base(world) + "/triggers", headers=world.auth, json=trigger_body(conn, token)
        )
    )
    trigger_uuid = made["trigger_uuid"]
    variables = base(world) + f"/triggers/{trigger_uuid}/environment_variables"
    ok(
        world.client.patch(
            variables,
            headers=world.auth,
            json={
                "NODE_ENV": {"value": "production", "is_secret": False},
                "API_KEY": {"value": SECRET, "is_secret": True},
            },
        )
    )
    queued = build(world, trigger_uuid)
    ok(world.client.put(base(world) + f"/builds/{queued['build_uuid']}/cancel", headers=world.auth))
    hook = new_hook(world, TAG)
    fired = ok(fire(world, hook["deploy_hook_uuid"]))
    failure(
        world.client.delete(base(world) + f"/triggers/{UNKNOWN}", headers=world.auth), 404, 12000
    )
    ok(world.client.delete(base(world) + f"/triggers/{trigger_uuid}", headers=world.auth))
    finished = clock.now()

    logged = entries(world)
    assert [summary(entry) for entry in logged] == [
        ("upsertRepoConnection", "upsert", True, "repo_connection", 200),
        ("createBuildToken", "create", True, "build_token", 200),
        ("createTrigger", "create", True, "trigger", 200),
        ("upsertEnvironmentVariables", "update", True, "environment_variables", 200),
        ("createManualBuild", "create", True, "build", 200),
        ("cancelBuildByUuid", "cancel", True, "build", 200),
        ("createDeployHook", "create", True, "deploy_hook", 200),
        ("triggerDeployHook", "create", True, "build", 200),
        ("deleteTrigger", "delete", False, "trigger", 404),
        ("deleteTrigger", "delete", True, "trigger", 200),
    ]
    assert [entry["resource"]["id"] for entry in logged] == [
        conn["repo_connection_uuid"],
        token["build_token_uuid"],
        trigger_uuid,
        trigger_uuid,
        queued["build_uuid"],
        queued["build_uuid"],
        hook["deploy_hook_uuid"],
        fired["build_uuid"],
        UNKNOWN,
        trigger_uuid,
    ]
    user, credential = admin_id(world), token_id(world)
    for entry in logged:
        assert UUID.match(entry["id"])
        assert TIME.match(entry["when"]) and started <= entry["when"] <= finished
        assert entry["interface"] == "API"
        assert entry["owner"] == {"id": world.account}
        assert set(entry) == {
            "id",
            "action",
            "actor",
            "interface",
            "metadata",
            "owner",
            "resource",
            "when",
        }
        if entry["metadata"]["operation"] == "triggerDeployHook":
            # No credential: the hook's uuid is the secret. Recorded in the hook's account.
            assert entry["actor"] == {"id": "", "email": "", "ip": CLIENT_IP, "type": "Cloudflare"}
            assert entry["metadata"]["credential_id"] is None
            assert entry["metadata"]["deploy_hook_uuid"] == hook["deploy_hook_uuid"]
            continue
        assert entry["actor"] == {"id": user, "email": ADMIN_EMAIL, "ip": CLIENT_IP, "type": "user"}
        assert entry["metadata"]["credential_id"] == credential
        assert entry["metadata"]["credential_type"] == "api_token"
    by_operation = {entry["metadata"]["operation"]: entry for entry in logged}
    # Variable names are recorded, never their values.
    assert by_operation["upsertEnvironmentVariables"]["metadata"]["names"] == [
        "API_KEY",
        "NODE_ENV",
    ]
    assert by_operation["createManualBuild"]["metadata"]["trigger_uuid"] == trigger_uuid
    assert logged[8]["metadata"]["error_code"] == 12000
    assert "error_code" not in logged[9]["metadata"]


def test_no_secret_reaches_the_audit_log(world: World) -> None:
    t = trigger(world)  # registers a build token with its secret
    variables = base(world) + f"/triggers/{t['trigger_uuid']}/environment_variables"
    ok(
        world.client.patch(
            variables, headers=world.auth, json={"API_KEY": {"value": SECRET, "is_secret": True}}
        )
    )
    ok(
        world.client.patch(
            variables,
            headers=world.auth,
            json={"variables": [{"key": "OTHER", "value": SECRET, "type": "secret"}]},
        )
    )
    # Refused bodies that carry secrets are recorded as failures, without the body.
    failure(
        world.client.patch(
            variables, headers=world.auth, json={"BAD KEY": {"value": SECRET, "is_secret": True}}
        ),
        400,
        12002,
    )
    failure(
        world.client.post(
            base(world) + "/tokens",
            headers=world.auth,
            json={"build_token_secret": BUILD_TOKEN_SECRET, "unexpected": SECRET},
        ),
        400,
        12002,
    )
    response = world.client.get(url(world), headers=world.auth, params={"per_page": 1000})
    assert ok(response) and not [s for s in KNOWN_SECRETS | {SECRET} if s in response.text]
    rows = raw_rows(world)
    assert len(rows) == 7
    text = repr(rows)
    assert SECRET not in text and BUILD_TOKEN_SECRET not in text
    assert not [secret for secret in KNOWN_SECRETS if secret in text]
    refused = [row for row in rows if not row["action_result"]]
    assert sorted(row["status"] for row in refused) == [400, 400]


def test_a_bad_body_is_a_failed_write(world: World) -> None:
    failure(
        world.client.put(base(world) + "/repos/connections", headers=world.auth, json={"x": 1}),
        400,
        12002,
    )
    (entry,) = entries(world)
    assert summary(entry) == ("upsertRepoConnection", "upsert", False, "repo_connection", 400)
    assert entry["resource"]["id"] == "" and entry["metadata"]["error_code"] == 12002


def test_a_global_api_key_is_recorded_as_its_user(world: World) -> None:
    key = world.run(world.services.admin.create_user("member@example.com", world.account))
    headers = {"X-Auth-Email": "member@example.com", "X-Auth-Key": key}
    body = connection_body("2")
    ok(world.client.put(base(world) + "/repos/connections", json=body, headers=headers))
    (entry,) = entries(world, **{"actor.email": "member@example.com"})
    assert entry["actor"]["email"] == "member@example.com" and entry["actor"]["type"] == "user"
    assert entry["metadata"]["credential_id"] == entry["actor"]["id"]  # the user is the credential
    assert entry["metadata"]["credential_type"] == "api_key"


def test_reads_and_refused_credentials_are_not_recorded(world: World) -> None:
    connection(world)
    assert len(entries(world)) == 1
    world.client.get(base(world) + "/repos/connections", headers=world.auth)
    world.client.get(base(world) + "/tokens", headers=world.auth)
    listing(world)
    read_only = world.bearer(world.new_token("Workers CI Read"))
    failure(
        world.client.put(base(world) + "/repos/connections", json={}, headers=read_only), 403, 10000
    )
    failure(world.client.put(base(world) + "/repos/connections", json={}), 401, 12005)
    # An unknown deploy hook names no account: nothing to record it in.
    failure(fire(world, UNKNOWN), 404, 12000)
    assert len(entries(world)) == 1
    assert len(raw_rows(world)) == 1


def test_a_rate_limited_deploy_hook_is_a_failed_write(world: World) -> None:
    t = trigger(world)
    hook = new_hook(world, t["external_script_id"])
    statuses = []
    for _ in range(11):  # 10 hook builds a minute per Worker (D15), then 429
        response = fire(world, hook["deploy_hook_uuid"])
        statuses.append(response.status_code)
        if response.status_code == 200:  # cancelled, so the next fire is not `already_exists`
            build_uuid = response.json()["result"]["build_uuid"]
            ok(world.client.put(base(world) + f"/builds/{build_uuid}/cancel", headers=world.auth))
    assert statuses[-1] == 429
    fired = entries(world, **{"hide_user_logs": "true"})
    assert [entry["action"]["result"] for entry in fired] == [True] * 10 + [False]
    assert fired[-1]["metadata"]["status"] == 429 and fired[-1]["resource"]["id"] == ""
    assert {entry["actor"]["type"] for entry in fired} == {"Cloudflare"}


def test_every_write_of_the_route_table_is_audited() -> None:
    """A new write route cannot escape the audit log; no read is recorded."""
    for op in OPERATIONS:
        writes = op.access in ("builds:write", "scripts:write")
        writes = writes or op.operation_id == "triggerDeployHook"
        assert (op.audit is not None) == writes, op.operation_id


def test_every_create_writes_its_entry_in_its_own_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second commit to lose: with the after-the-answer path broken, every create still has
    its entry, naming what it made."""

    async def broken(event: Any) -> None:
        raise AssertionError(f"{event.operation} was recorded after its transaction")

    monkeypatch.setattr(world.services.audit, "record", broken)
    made = [
        ("repo_connection", connection(world)["repo_connection_uuid"]),
        ("build_token", build_token(world)["build_token_uuid"]),
    ]
    t = trigger(world)
    made += [
        ("trigger", t["trigger_uuid"]),
        ("build", build(world, t["trigger_uuid"])["build_uuid"]),
    ]
    monkeypatch.undo()
    recorded = [(e["resource"]["type"], e["resource"]["id"]) for e in entries(world)]
    assert set(made) <= set(recorded)  # trigger() makes a connection and a token of its own
    assert len(recorded) == 6 and all(resource_id for _, resource_id in recorded)


def test_a_write_and_its_entry_commit_together(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry the database refuses takes its write with it: never a write without its entry."""
    from buildsd.store import audit_logs

    async def refused(conn: Any, entries: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit_logs, "insert_many", refused)
    response = world.client.put(
        base(world) + "/repos/connections", json=connection_body(), headers=world.auth
    )
    failure(response, 500, 10001)
    assert "could not record upsertRepoConnection" in caplog.text  # nor the failure's entry
    monkeypatch.undo()
    assert entries(world) == []
    listed = world.client.get(base(world) + "/repos/connections", headers=world.auth).json()
    assert listed["result"] == []


def test_a_failing_entry_of_a_refusal_does_not_change_the_answer(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(event: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(world.services.audit, "record", broken)
    response = world.client.put(
        base(world) + "/repos/connections", json={"repo_id": 1}, headers=world.auth
    )
    failure(response, 400, 12002)
    assert "could not record upsertRepoConnection (status 400)" in caplog.text


def test_concurrent_entries_share_a_commit_and_a_refused_one_fails_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = world.services.audit
    caller = world.run(world.services.identity.caller_for_token(world.token))
    commits = []
    insert = audit._insert

    async def counted(batch: list[dict[str, Any]]) -> None:
        commits.append(len(batch))
        await insert(batch)

    monkeypatch.setattr(audit, "_insert", counted)

    def event(account: str) -> AuditEvent:
        return AuditEvent(
            account_id=account,
            operation="upsertRepoConnection",
            action_type="upsert",
            resource_type="repo_connection",
            resource_id="r",
            status=200,
            caller=caller,
            ip="192.0.2.1",
        )

    async def together(accounts: list[str]) -> list[Any]:
        calls = [audit.record(event(account)) for account in accounts]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    recorded = world.run(together([world.account] * 20))
    assert all(UUID.match(entry_id) for entry_id in recorded)
    assert sum(commits) == 20 and len(commits) < 20  # batched: fewer commits than entries
    commits.clear()
    # An account that does not exist breaks the foreign key: that entry alone fails.
    recorded = world.run(together([world.account] * 5 + ["f" * 32] + [world.account] * 5))
    assert isinstance(recorded[5], Exception)
    assert all(UUID.match(entry_id) for entry_id in recorded[:5] + recorded[6:])
    assert len(entries(world)) == 30


# --- serving: filters, paging, access ------------------------------------------------------------


def test_filters_by_time_action_actor_and_id(world: World) -> None:
    for repo in ("1", "2", "3"):
        connection(world, repo_id=repo)
    listed = ok(world.client.get(base(world) + "/repos/connections", headers=world.auth))
    for item in listed[:2]:
        ok(
            world.client.delete(
                base(world) + f"/repos/connections/{item['repo_connection_uuid']}",
                headers=world.auth,
            )
        )
    everything = entries(world)
    assert len(everything) == 5
    whens = [entry["when"] for entry in everything]
    assert whens == sorted(whens)

    pivot = whens[2]
    since = entries(world, since=pivot)
    assert since == [entry for entry in everything if entry["when"] >= pivot]
    before = entries(world, before=pivot)
    assert before == [entry for entry in everything if entry["when"] < pivot]
    assert entries(world, since=pivot, before=pivot) == []
    # A date is midnight UTC; a zone offset is honoured.
    assert entries(world, since="2000-01-01") == everything
    assert entries(world, before="2000-01-01T00:00:00+02:00") == []

    deletes = entries(world, **{"action.type": "delete"})
    assert [entry["action"]["type"] for entry in deletes] == ["delete", "delete"]
    assert entries(world, **{"action.type": "upsert"}) == everything[:3]
    assert entries(world, **{"action.type": "purge"}) == []
    assert entries(world, **{"actor.email": ADMIN_EMAIL.upper()}) == everything
    assert entries(world, **{"actor.email": "nobody@example.com"}) == []
    assert entries(world, **{"actor.ip": CLIENT_IP}) == everything
    assert entries(world, **{"actor.ip": "192.0.2.1"}) == []
    assert entries(world, id=everything[1]["id"]) == [everything[1]]
    assert entries(world, hide_user_logs="true") == []
    # Accepted and ignored, as a client of Cloudflare's API may send them.
    assert entries(world, export="false", **{"zone.name": "example.com"}) == everything

    newest_first, _ = listing(world)
    assert newest_first == everything[::-1]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"before": "2026-13-01"},
        {"per_page": "0"},
        {"per_page": "1001"},
        {"page": "0"},
        {"page": str(2**31)},
        {"direction": "up"},
        {"hide_user_logs": "maybe"},
        {"actor.ip": "10.0.0.0/8"},
    ],
)
def test_bad_query_parameters_are_400_12013(world: World, params: dict[str, str]) -> None:
    failure(world.client.get(url(world), params=params, headers=world.auth), 400, 12013)


def test_paging(world: World) -> None:
    for repo in range(7):
        connection(world, repo_id=str(repo))
    result, info = listing(world)
    assert info == {"page": 1, "per_page": 100, "count": 7, "total_count": 7, "total_pages": 1}
    everything = result
    pages = []
    for number in (1, 2, 3):
        page, info = listing(world, page=number, per_page=3)
        assert info["page"] == number and info["per_page"] == 3
        assert info["total_count"] == 7 and info["total_pages"] == 3
        assert info["count"] == len(page) == (3 if number < 3 else 1)
        pages += page
    assert pages == everything
    assert [entry["when"] for entry in pages] == sorted((e["when"] for e in pages), reverse=True)
    past, info = listing(world, page=4, per_page=3)
    assert past == [] and info["count"] == 0 and info["total_count"] == 7
    ascending, _ = listing(world, per_page=3, direction="asc")
    assert ascending == everything[::-1][:3]


def test_another_accounts_logs_are_not_visible(world: World) -> None:
    connection(world)
    other = world.new_account()
    world.grant(other)
    theirs = world.bearer(world.new_token("Workers CI Write", account=other))
    failure(world.client.get(url(world), headers=theirs), 403, 10000)
    body = connection_body("2")
    ok(world.client.put(base(world, other) + "/repos/connections", json=body, headers=theirs))
    response = world.client.get(url(world, other), headers=theirs)
    (their_entry,) = ok(response)
    assert their_entry["owner"] == {"id": other}
    mine = entries(world)
    assert len(mine) == 1 and mine[0]["owner"] == {"id": world.account}
    # A token of this account cannot read the other account's log either.
    failure(world.client.get(url(world, other), headers=world.auth), 403, 10000)


def test_read_permission_is_enough_and_no_credentials_is_401(world: World) -> None:
    connection(world)
    read_only = world.bearer(world.new_token("Workers CI Read"))
    result, _ = listing(world, headers=read_only)
    assert len(result) == 1
    failure(world.client.get(url(world)), 401, 12005)


def test_served_in_strict_mode_and_documented(make_world: Any) -> None:
    strict = make_world(strict=True)
    connection(strict)
    assert len(entries(strict)) == 1
    document = strict.client.get("/client/v4/openapi.json").json()
    operation = document["paths"]["/client/v4/accounts/{account_id}/audit_logs"]["get"]
    assert operation["tags"] == ["Audit Logs"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"action.type", "actor.email", "actor.ip", "since", "before", "direction"} <= names


def test_a_task_started_by_a_write_does_not_write_its_entry_later(world: World) -> None:
    """A task copies the request's context, draft included; once the service call has
    returned, the draft is closed and the task's transactions leave it alone."""
    audit = world.services.audit
    caller = world.run(world.services.identity.caller_for_token(world.token))
    entry = AuditEvent(
        account_id=world.account,
        operation="deleteTrigger",
        action_type="delete",
        resource_type="trigger",
        resource_id="t",
        status=200,
        caller=caller,
        ip="",
    )

    async def request() -> asyncio.Task[None]:
        draft, token = audit.begin(entry, named=True)

        async def later() -> None:
            async with world.services.db.transaction() as conn:
                await conn.one("SELECT 1 AS one")

        task = asyncio.create_task(later())
        audit.end(draft, token)
        return task

    async def both() -> None:
        await (await request())

    world.run(both())
    assert entries(world) == []
