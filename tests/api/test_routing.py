"""The envelope on every path: unknown routes (D8), wrong methods, headers, 500s never for input."""

from __future__ import annotations

import pytest

from buildsd import migrations
from buildsd.api import routes
from tests.conftest import World


def envelope_error(response) -> dict:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is False and body["messages"] == [] and body["result"] is None
    (error,) = body["errors"]
    return error


@pytest.mark.parametrize(
    "path",
    [
        "/client/v4/accounts/{a}/builds/nope",
        "/client/v4/accounts/{a}/builds",
        "/client/v4/accounts/{a}/builds/repos/connections/x/y/z",
        "/client/v4/accounts/ffffffffffffffffffffffffffffffff/builds/unknown",
    ],
)
def test_unknown_builds_route_is_404_12000(world: World, path: str) -> None:
    response = world.client.get(path.format(a=world.account), headers=world.auth)
    assert response.status_code == 404
    assert envelope_error(response) == {"code": 12000, "message": "Not found"}


# `/` is the dashboard (D28, tests/dashboard); paths it does not serve stay 400 7000.
@pytest.mark.parametrize("path", ["/nope", "/a", "/client/v4/nope", "/favicon.ico"])
def test_unknown_route_elsewhere_is_400_7000(world: World, path: str) -> None:
    response = world.client.get(path)
    assert response.status_code == 400
    assert envelope_error(response) == {"code": 7000, "message": "No route for that URI"}


def test_wrong_method_is_405_7001_with_allow(world: World) -> None:
    path = f"/client/v4/accounts/{world.account}/builds/repos/connections"
    response = world.client.post(path, headers=world.auth, json={})
    assert response.status_code == 405
    assert envelope_error(response) == {"code": 7001, "message": "Method not allowed"}
    assert "PUT" in response.headers["allow"]


def test_trailing_slash_is_not_redirected(world: World) -> None:
    path = f"/client/v4/accounts/{world.account}/builds/repos/connections/"
    response = world.client.put(path, headers=world.auth, json={}, follow_redirects=False)
    assert response.status_code == 404
    assert envelope_error(response)["code"] == 12000


def test_openapi_document_lists_every_operation(world: World) -> None:
    response = world.client.get("/client/v4/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operations = {
        op["operationId"]: op for methods in document["paths"].values() for op in methods.values()
    }
    listed = {
        (method.upper(), path, op["operationId"])
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }
    # Every served operation at its own method and path, and nothing else.
    assert listed == {(op.method, op.path, op.operation_id) for op in routes.served(strict=False)}
    for op in routes.OPERATIONS:
        tags = operations[op.operation_id]["tags"]
        assert (tags == ["extensions"]) == op.extension, op.operation_id
    assert operations["listRepoConnections"]["tags"] == ["extensions"]
    assert operations["getRepoConnection"]["tags"] == ["extensions"]
    assert operations["upsertRepoConnection"]["tags"] != ["extensions"]
    body = operations["upsertRepoConnection"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("UpsertRepoConnectionRequest")
    schema = document["components"]["schemas"]["UpsertRepoConnectionRequest"]
    assert set(schema["required"]) == {
        "provider_account_id",
        "provider_account_name",
        "provider_type",
        "repo_id",
        "repo_name",
    }


def test_strict_openapi_has_no_extensions(make_world) -> None:
    world = make_world(strict=True)
    document = world.client.get("/client/v4/openapi.json").json()
    tags = [op["tags"] for methods in document["paths"].values() for op in methods.values()]
    assert ["extensions"] not in tags


def test_health_and_readiness(world: World) -> None:
    assert world.client.get("/healthz").json()["result"] == {"status": "ok"}
    ready = world.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["result"]["database"] == "ok"


def test_readiness_fails_when_schema_is_behind(world: World) -> None:
    async def set_version(version: str) -> None:
        async with world.services.db.connection() as conn:
            await conn.run("UPDATE alembic_version SET version_num = :v", {"v": version})

    world.run(set_version("old"))
    try:
        response = world.client.get("/readyz")
        assert response.status_code == 503
        assert "db upgrade" in envelope_error(response)["message"]
    finally:  # on PostgreSQL the database outlives the test
        world.run(set_version(migrations.head()))


def test_an_unexpected_failure_is_500_10001_logged_and_a_failed_write(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/compatibility.md: an unexpected failure answers 500 `10001 Internal server error`
    in the envelope; what failed goes to the log, not to the client, and the write is audited."""
    from tests.api.flows import base, connection_body
    from tests.api.test_audit_logs import entries, summary

    async def broken(*args: object) -> None:
        raise RuntimeError("an unforeseen state at /srv/buildsd/internal")

    monkeypatch.setattr(world.services.repo_connections, "upsert", broken)
    response = world.client.put(
        base(world) + "/repos/connections", json=connection_body(), headers=world.auth
    )
    assert response.status_code == 500
    assert envelope_error(response) == {"code": 10001, "message": "Internal server error"}
    assert "unforeseen" not in response.text
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert logged.getMessage() == "unexpected error in upsertRepoConnection"
    assert logged.exc_info is not None and "unforeseen" in str(logged.exc_info[1])
    (entry,) = entries(world)
    assert summary(entry) == ("upsertRepoConnection", "upsert", False, "repo_connection", 500)
    assert entry["metadata"]["error_code"] == 10001
