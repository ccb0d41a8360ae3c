"""Regressions for what spec fuzzing (tests/fuzz) found, pinned as plain tests."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from buildsd.api.endpoint import Operation
from buildsd.api.routes import OPERATIONS
from buildsd.wire import MAX_PAGE
from tests.api.flows import (
    TAG,
    base,
    build_token,
    connection,
    connection_body,
    failure,
    ok,
    trigger_body,
)
from tests.api.test_worker_builds import create, create_body
from tests.conftest import World

PAGED = [op for op in OPERATIONS if op.paged]
UNKNOWN = "6f1c9e3e-1111-4222-8333-944455556666"


def _url(path: str, world: World, **more: str) -> str:
    return path.format(
        account_id=world.account, external_script_id=TAG, script_name="my-worker", **more
    )


def _with_a_preview(world: World) -> str:
    """The Worker TAG with builds, Previews on, and one Preview (of branch `feature`)."""
    create(world, create_body(build_token(world)))
    on = {"previews_enabled": True}
    ok(world.client.patch(base(world) + f"/workers/{TAG}", json=on, headers=world.auth))

    async def make() -> str:
        async with world.services.db.transaction() as conn:
            (row,) = await conn.all("SELECT repo_connection_uuid FROM repo_connections")
            uuid = row["repo_connection_uuid"]
            (made,) = await world.services.previews.for_push(conn, uuid, "feature")
            found = await conn.one(
                "SELECT preview_id FROM previews WHERE trigger_uuid = :t",
                {"t": made["trigger_uuid"]},
            )
            assert found is not None
            return str(found["preview_id"])

    return str(world.run(make()))


@pytest.mark.parametrize("op", PAGED, ids=[op.operation_id for op in PAGED])
def test_a_page_number_past_any_offset_is_a_bad_query_not_a_500(
    world: World, op: Operation
) -> None:
    # Was: OverflowError in the SQLite driver (bigint out of range on PostgreSQL) → 500.
    extra = (
        {"script_tag": TAG, "preview_id": _with_a_preview(world)}
        if "{script_tag}" in op.path
        else {}
    )
    url = _url(op.path, world, **extra)
    if "{script_name}" in op.path:  # a Worker's versions: the Worker exists, it has none
        world.run(world.services.workers.create(world.account, "my-worker"))
    for page in (MAX_PAGE + 1, 36196212027601016848384):
        response = world.client.get(url, params={"page": page}, headers=world.auth)
        error = failure(response, 400, 12013)
        assert error["source"]["pointer"] == "/page"
    past = ok(world.client.get(url, params={"page": MAX_PAGE}, headers=world.auth))
    assert past in ([], {"items": []})


def test_the_document_lists_each_operations_own_statuses(world: World) -> None:
    document = world.client.get("/client/v4/openapi.json").json()
    operations = {
        op["operationId"]: op for methods in document["paths"].values() for op in methods.values()
    }

    def statuses(name: str) -> set[str]:
        return set(operations[name]["responses"])

    assert "201" in statuses("createWorkerBuild") and "200" not in statuses("createWorkerBuild")
    for name in ("createDeployHook", "updateDeployHook", "createWorkerBuild"):
        assert "409" in statuses(name)
    assert "503" in statuses("readyz")
    assert statuses("healthz") == {"200", "429", "500"}
    assert "413" not in statuses("getTrigger") and "413" in statuses("createTrigger")
    assert not [name for name in operations if "405" in statuses(name)]
    metrics = operations["metrics"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    stream = operations["streamBuildLogs"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]


def test_a_nul_in_a_body_is_a_bad_body_not_a_500(world: World) -> None:
    # Was: accepted on SQLite, 500 on PostgreSQL (text cannot hold NUL).
    conn, token = connection(world), build_token(world)
    trigger = ok(
        world.client.post(
            base(world) + "/triggers", json=trigger_body(conn, token), headers=world.auth
        )
    )
    url = f"{base(world)}/triggers/{trigger['trigger_uuid']}"
    for target, body, pointer in [
        (url, {"build_command": "npm run build\x00"}, "/build_command"),
        (url + "/environment_variables", {"KEY": {"value": "a\x00"}}, "/KEY/value"),
    ]:
        error = failure(world.client.patch(target, json=body, headers=world.auth), 400, 12002)
        assert error["source"]["pointer"] == pointer
    error = failure(
        world.client.post(url + "/builds", json={"branch": "a\x00"}, headers=world.auth), 400, 12002
    )
    assert error["source"]["pointer"] == "/branch"


def test_a_nul_in_an_id_is_not_found_not_a_500(world: World) -> None:
    # Was: 500 on PostgreSQL for every id looked up in the database.
    for method, url in [
        ("GET", base(world) + "/triggers/%00"),
        ("GET", base(world) + "/workers/a%00b/builds"),
        ("GET", base(world) + "/workers/%00/deploy_hooks"),
        ("DELETE", base(world) + f"/triggers/{UNKNOWN}/environment_variables/%00"),
        ("POST", "/client/v4/workers/builds/deploy_hooks/%00"),
    ]:
        failure(world.client.request(method, url, headers=world.auth), 404, 12000)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/repos/connections", "repo_id"),
        ("/builds", "version_ids"),
        ("/builds/latest", "external_script_ids"),
    ],
)
def test_a_nul_in_a_query_id_is_a_bad_query_not_a_500(world: World, path: str, name: str) -> None:
    response = world.client.get(base(world) + path, params={name: "a\x00b"}, headers=world.auth)
    assert failure(response, 400, 12013)["source"]["pointer"] == f"/{name}"


def test_a_free_form_body_nested_too_deep_is_a_bad_body_not_a_500(world: World) -> None:
    # Was: RecursionError from the decoder of the variables' map (values typed Any) → 500.
    url = f"{base(world)}/triggers/{UNKNOWN}/environment_variables"
    body = b'{"KEY": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001
    failure(world.client.patch(url, content=body, headers=world.auth), 400, 12002)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("external_script_id", TAG + "\n"),
        ("build_token_uuid", UNKNOWN + "\n"),
        ("trigger_name", "Deploy\nmain"),
        ("trigger_name", "Deploy main\x1b[2J"),
    ],
)
def test_patterns_hold_for_the_whole_string(world: World, field: str, value: str) -> None:
    # Was: "$" also matched before a final newline, so "<tag>\n" was a valid Worker tag.
    body = {**trigger_body(connection(world), build_token(world)), field: value}
    response = world.client.post(base(world) + "/triggers", json=body, headers=world.auth)
    assert failure(response, 400, 12002)["source"]["pointer"] == f"/{field}"


def test_a_variable_name_or_commit_with_a_newline_is_refused(world: World) -> None:
    url = f"{base(world)}/triggers/{UNKNOWN}"
    body = {"ABC\n": {"value": "x"}}
    response = world.client.patch(url + "/environment_variables", json=body, headers=world.auth)
    failure(response, 400, 12002)
    response = world.client.post(
        url + "/builds", json={"commit_hash": "abcd\n"}, headers=world.auth
    )
    assert failure(response, 400, 12002)["source"]["pointer"] == "/commit_hash"


def test_a_nul_in_an_audit_log_filter_is_a_bad_query_not_a_500(world: World) -> None:
    # Was: 500 on PostgreSQL (found by `make fuzz`).
    url = f"/client/v4/accounts/{world.account}/audit_logs"
    for name in ("actor.ip", "actor.email", "action.type", "id"):
        response = world.client.get(url, params={name: "a\x00b"}, headers=world.auth)
        assert failure(response, 400, 12013)["source"]["pointer"] == f"/{name}"


def test_a_body_cut_short_by_a_disconnect_is_never_used(world: World) -> None:
    """Was: the part of the body that came was decoded as the whole, so a client gone (or cut
    off by the body timeout) mid-body could still write, e.g. a JSON object then padding."""
    body = connection_body("77")
    part = msgspec.json.encode(body)
    messages = [
        {"type": "http.request", "body": part, "more_body": True},  # the padding never came
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": base(world) + "/repos/connections",
        "raw_path": (base(world) + "/repos/connections").encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {world.token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(part) + 100).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    world.run(world.client.app(scope, receive, send))  # type: ignore[operator]
    assert sent[0]["status"] == 400
    assert ok(world.client.get(base(world) + "/repos/connections", headers=world.auth)) == []
