"""PUT/DELETE …/builds/repos/connections (spec §3.1-3.2, D5, D6) and list/get extensions (D7)."""

from __future__ import annotations

import pytest

from buildsd import clock
from tests.conftest import World

PATH = "/client/v4/accounts/{account}/builds/repos/connections"

BODY = {
    "provider_account_id": "41612145",
    "provider_account_name": "octo-org",
    "provider_type": "github",
    "repo_id": "562843111",
    "repo_name": "my-worker",
}


def put(world: World, body: object = BODY, account: str | None = None, **kw: object):
    return world.client.put(
        PATH.format(account=account or world.account), json=body, headers=world.auth, **kw
    )


def listed(world: World, **params: object) -> dict:
    response = world.client.get(
        PATH.format(account=world.account), headers=world.auth, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_upsert_returns_the_connection_whole(world: World) -> None:
    response = put(world)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    result = body["result"]
    assert {k: result[k] for k in BODY} == BODY
    assert result["deleted_on"] is None
    assert result["created_on"] == result["modified_on"]
    assert list(result) == [
        "repo_connection_uuid",
        "provider_type",
        "provider_account_id",
        "provider_account_name",
        "repo_id",
        "repo_name",
        "created_on",
        "modified_on",
        "deleted_on",
    ]


def test_re_put_keeps_uuid_and_created_on_and_updates_names(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clock, "now", lambda: "2026-01-02T03:04:05.678Z")
    first = put(world).json()["result"]
    monkeypatch.setattr(clock, "now", lambda: "2026-01-02T03:04:05.679Z")  # the next millisecond
    renamed = {
        **BODY,
        "repo_name": "renamed",
        "provider_account_name": "new-org",
        "provider_account_id": "99",
    }
    second = put(world, renamed).json()["result"]
    assert second["repo_connection_uuid"] == first["repo_connection_uuid"]
    assert second["created_on"] == first["created_on"]
    assert second["modified_on"] > first["modified_on"]
    assert (second["repo_name"], second["provider_account_name"]) == ("renamed", "new-org")
    assert second["provider_account_id"] == "99"
    assert listed(world)["result_info"]["total_count"] == 1


def test_upsert_key_is_account_provider_and_repo_id(world: World) -> None:
    github = put(world).json()["result"]
    gitlab = put(world, {**BODY, "provider_type": "gitlab"}).json()["result"]
    other_repo = put(world, {**BODY, "repo_id": "1"}).json()["result"]
    uuids = {
        github["repo_connection_uuid"],
        gitlab["repo_connection_uuid"],
        other_repo["repo_connection_uuid"],
    }
    assert len(uuids) == 3
    other_account = world.new_account()
    world.grant(other_account)  # two accounts: only grants let them connect (D21)
    token = world.new_token("Workers CI Write", account=other_account)
    theirs = world.client.put(
        PATH.format(account=other_account), json=BODY, headers=world.bearer(token)
    ).json()["result"]
    assert theirs["repo_connection_uuid"] not in uuids


@pytest.mark.parametrize("provider_type", ["github", "gitlab", "gitlab_internal", "origin"])
def test_every_provider_type_of_the_spec(world: World, provider_type: str) -> None:
    response = put(world, {**BODY, "provider_type": provider_type})
    assert response.status_code == 200
    assert response.json()["result"]["provider_type"] == provider_type


def test_delete_is_soft_then_404_and_put_revives_the_same_uuid(world: World) -> None:
    created = put(world).json()["result"]
    uuid = created["repo_connection_uuid"]
    url = PATH.format(account=world.account) + f"/{uuid}"
    deleted = world.client.delete(url, headers=world.auth)
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "errors": [], "messages": [], "result": None}
    for response in (
        world.client.delete(url, headers=world.auth),
        world.client.get(url, headers=world.auth),
    ):
        assert response.status_code == 404
        assert response.json()["errors"] == [{"code": 12000, "message": "Not found"}]
    assert listed(world)["result"] == []
    revived = put(world).json()["result"]
    assert revived["repo_connection_uuid"] == uuid
    assert revived["deleted_on"] is None
    assert revived["created_on"] == created["created_on"]


@pytest.mark.parametrize(
    "unknown", ["6f1c9e3e-1111-4222-8333-944455556666", "not-a-uuid", "x" * 300]
)
def test_unknown_connection_is_404_12000(world: World, unknown: str) -> None:
    response = world.client.delete(
        PATH.format(account=world.account) + f"/{unknown}", headers=world.auth
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 12000


def test_another_accounts_connection_is_404_and_untouched(world: World) -> None:
    other = world.new_account()
    world.grant(other)
    token = world.new_token("Workers CI Write", account=other)
    theirs = world.client.put(PATH.format(account=other), json=BODY, headers=world.bearer(token))
    uuid = theirs.json()["result"]["repo_connection_uuid"]
    mine = PATH.format(account=world.account) + f"/{uuid}"
    assert world.client.delete(mine, headers=world.auth).status_code == 404
    assert world.client.get(mine, headers=world.auth).status_code == 404
    still = world.client.get(PATH.format(account=other) + f"/{uuid}", headers=world.bearer(token))
    assert still.status_code == 200 and still.json()["result"]["deleted_on"] is None


BAD_BODIES = [
    pytest.param(b"{not json", "/", id="invalid-json"),
    pytest.param(b"", "", id="empty"),
    pytest.param(b"[]", "", id="array"),
    pytest.param(b"null", "", id="null"),
    pytest.param(b'"text"', "", id="string"),
    pytest.param(
        b'{"provider_account_id": 41612145, "provider_account_name": "o", '
        b'"provider_type": "github", "repo_id": "1", "repo_name": "r"}',
        "/provider_account_id",
        id="number-for-string",
    ),
    pytest.param(
        b'{"provider_account_id": "1", "provider_account_name": "o", '
        b'"provider_type": "bitbucket", "repo_id": "1", "repo_name": "r"}',
        "/provider_type",
        id="unknown-provider",
    ),
    pytest.param(
        b'{"provider_account_id": "1", "provider_type": "github", "repo_id": "1", '
        b'"repo_name": "r"}',
        "",
        id="missing-field",
    ),
    pytest.param(
        b'{"provider_account_id": "", "provider_account_name": "o", '
        b'"provider_type": "github", "repo_id": "1", "repo_name": "r"}',
        "/provider_account_id",
        id="empty-string",
    ),
    pytest.param(
        b'{"provider_account_id": "1", "provider_account_name": "o", '
        b'"provider_type": "github", "repo_id": "1", "repo_name": "r", "x": 1}',
        "",
        id="unknown-field",
    ),
    pytest.param(
        b'{"provider_account_id": "\xff\xfe", "provider_account_name": "o", '
        b'"provider_type": "github", "repo_id": "1", "repo_name": "r"}',
        "",
        id="invalid-utf8",
    ),
]


@pytest.mark.parametrize(("raw", "pointer"), BAD_BODIES)
def test_bad_body_is_400_12002_and_writes_nothing(world: World, raw: bytes, pointer: str) -> None:
    response = world.client.put(
        PATH.format(account=world.account),
        content=raw,
        headers={**world.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    error = body["errors"][0]
    assert (error["code"], error["message"]) == (12002, "Invalid request body")
    assert error["error_chain"][0]["message"]  # a person can see what was wrong
    if pointer not in ("", "/"):
        assert error["source"]["pointer"] == pointer
    assert listed(world)["result"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repo_name", "../../buildsd/"),
        ("repo_name", "%2f..%2f"),
        ("repo_name", ".."),
        ("repo_name", "a/b/c"),
        ("repo_name", "someone-else/my-worker"),
        ("repo_name", "a\\b"),
        ("provider_account_name", "octo-org/sub"),
        ("provider_account_name", "."),
        ("repo_id", "1/../2"),
        ("provider_account_id", "100%"),
    ],
)
def test_a_name_that_cannot_be_one_url_segment_is_400_12002(
    world: World, field: str, value: str
) -> None:
    """Each value fills one path segment of the clone URL (D23): refused at the PUT, with the
    field named, rather than cloning a repository outside the template's root later."""
    response = put(world, {**BODY, field: value})
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == 12002 and error["source"] == {"pointer": f"/{field}"}
    assert field in error["error_chain"][0]["message"]
    assert listed(world)["result"] == []


def test_owner_slash_repo_is_that_owners_repo_and_stored_as_sent(world: World) -> None:
    """Cloudflare records repo_name with or without the owner; real setup scripts send both."""
    body = {**BODY, "repo_name": "octo-org/my-worker"}
    assert put(world, body).json()["result"]["repo_name"] == "octo-org/my-worker"
    spaced = {**BODY, "repo_id": "2", "repo_name": "my worker #2"}  # encoded, not refused
    assert put(world, spaced).json()["result"]["repo_name"] == "my worker #2"


def test_body_over_the_limit_is_413_and_writes_nothing(world: World) -> None:
    huge = {**BODY, "repo_name": "x" * (2 * 1024 * 1024)}
    response = put(world, huge)
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == 12002
    assert listed(world)["result"] == []


def test_list_pages_in_creation_order_with_filters(world: World) -> None:
    made = [put(world, {**BODY, "repo_id": str(i)}).json()["result"] for i in range(5)]
    put(world, {**BODY, "repo_id": "gl", "provider_type": "gitlab"})
    page = listed(world, per_page=2, page=2)
    assert [c["repo_id"] for c in page["result"]] == ["2", "3"]
    assert page["result_info"] == {
        "page": 2,
        "per_page": 2,
        "count": 2,
        "total_count": 6,
        "total_pages": 3,
    }
    assert listed(world, page=9)["result"] == []
    assert [c["repo_id"] for c in listed(world, provider_type="gitlab")["result"]] == ["gl"]
    only = listed(world, repo_id="3")["result"]
    assert [c["repo_connection_uuid"] for c in only] == [made[3]["repo_connection_uuid"]]


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page": "x"}, {"per_page": 0}, {"per_page": 201}, {"provider_type": "svn"}],
)
def test_bad_query_is_400_12013(world: World, params: dict) -> None:
    response = world.client.get(
        PATH.format(account=world.account), headers=world.auth, params=params
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 12013


def test_strict_mode_removes_the_extensions(make_world) -> None:
    world = make_world(strict=True)
    created = put(world)
    assert created.status_code == 200
    uuid = created.json()["result"]["repo_connection_uuid"]
    for path in (PATH, PATH + f"/{uuid}"):
        response = world.client.get(path.format(account=world.account), headers=world.auth)
        assert response.status_code == 404
        assert response.json()["errors"] == [{"code": 12000, "message": "Not found"}]
    assert (
        world.client.delete(
            PATH.format(account=world.account) + f"/{uuid}", headers=world.auth
        ).status_code
        == 200
    )
