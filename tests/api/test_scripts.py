"""The Workers platform calls around Builds (D24) through HTTP: every operation's success shape,
its auth failures, a bad body, an unknown id and another account's id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from buildsd.errors import AlreadyExists, WorkerNotFound
from buildsd.services.scripts import read_upload
from buildsd.wire_workers import (
    CreateDeploymentRequest,
    Deployment,
    DeploymentVersion,
    Subdomain,
    Version,
)
from tests.api.flows import BOUNDARY, META, failure, form, ok, trigger
from tests.conftest import World

SCRIPTS_WRITE = "Workers Scripts Write"


def workers(world: World, account: str | None = None) -> str:
    return f"/client/v4/accounts/{account or world.account}/workers"


@pytest.fixture
def scripts_world(world: World) -> World:
    world.token = world.new_token(SCRIPTS_WRITE, "Workers CI Write")
    return world


def upload(world: World, name: str = "my-worker", **kw: Any) -> Any:
    body, kind = form(META)
    return world.client.put(
        f"{workers(world)}/scripts/{name}",
        content=body,
        headers={**world.auth, "Content-Type": kind, **kw.get("headers", {})},
    )


def test_upload_list_service_and_builds_share_one_worker(scripts_world: World) -> None:
    world = scripts_world
    script = ok(upload(world))
    assert script["id"] == "my-worker" and len(script["tag"]) == 32
    assert script["compatibility_date"] == "2025-01-01" and script["has_modules"] is True
    assert script["deployment_id"] and script["startup_time_ms"] == 0
    listed = world.client.get(f"{workers(world)}/scripts", headers=world.auth)
    body = listed.json()
    assert [item["id"] for item in body["result"]] == ["my-worker"]
    assert body["result"][0]["tag"] == script["tag"]
    assert body["result_info"]["total_count"] == 1
    service = ok(world.client.get(f"{workers(world)}/services/my-worker", headers=world.auth))
    assert service["default_environment"]["script"]["tag"] == script["tag"]
    assert service["default_environment"]["environment"] == "production"
    # The Builds API knows the Worker by that tag (D24): its deploy hooks take the name.
    hooks = f"/client/v4/accounts/{world.account}/builds/workers/my-worker/deploy_hooks"
    assert ok(world.client.get(hooks, headers=world.auth)) == []
    # A second upload is the same Worker's next version.
    again = ok(upload(world))
    assert again["tag"] == script["tag"] and again["deployment_id"] != script["deployment_id"]


def test_a_worker_made_by_the_cli_is_listed_and_uploads_keep_its_tag(
    scripts_world: World,
) -> None:
    world = scripts_world
    tag = world.run(world.services.workers.create(world.account, "site"))
    listed = ok(world.client.get(f"{workers(world)}/scripts", headers=world.auth))
    assert [(item["id"], item["tag"]) for item in listed] == [("site", tag)]
    # Not "api": wrangler would then warn of script-API edits and ask before its first deploy.
    service = ok(world.client.get(f"{workers(world)}/services/site", headers=world.auth))
    assert listed[0]["last_deployed_from"] == "wrangler"
    assert service["default_environment"]["script"]["last_deployed_from"] == "wrangler"
    assert ok(upload(world, "site"))["tag"] == tag


def test_a_workers_first_version_is_what_it_shows_until_a_deployment(
    scripts_world: World,
) -> None:
    """A version uploaded to a Worker with no script yet (`buildsd workers create`) sets its
    settings and etag; a later version, stored and not deployed, changes neither."""
    world = scripts_world
    world.run(world.services.workers.create(world.account, "site"))
    script = f"{workers(world)}/scripts/site"

    def version(metadata: dict[str, Any], module: bytes) -> Any:
        body, kind = form(metadata, {"index.js": module})
        sent = world.client.post(
            f"{script}/versions", content=body, headers={**world.auth, "Content-Type": kind}
        )
        return ok(sent)

    first = version(META, b"export default {};")
    settings = ok(world.client.get(f"{script}/settings", headers=world.auth))
    assert settings["compatibility_date"] == "2025-01-01"
    [listed] = ok(world.client.get(f"{workers(world)}/scripts", headers=world.auth))
    assert listed["etag"] == first["resources"]["script"]["etag"] and listed["has_modules"]
    assert listed["deployment_id"] is None
    version({**META, "compatibility_date": "2025-06-01"}, b"export default {a: 1};")
    settings = ok(world.client.get(f"{script}/settings", headers=world.auth))
    assert settings["compatibility_date"] == "2025-01-01"
    [again] = ok(world.client.get(f"{workers(world)}/scripts", headers=world.auth))
    assert again["etag"] == listed["etag"]
    assert ok(world.client.get(f"{script}/deployments", headers=world.auth))["deployments"] == []


def test_list_pages(scripts_world: World) -> None:
    world = scripts_world
    for index in range(3):
        world.run(world.services.workers.create(world.account, f"w{index}"))
    page = world.client.get(
        f"{workers(world)}/scripts", params={"per_page": 2, "page": 2}, headers=world.auth
    ).json()
    first = world.client.get(f"{workers(world)}/scripts?per_page=2", headers=world.auth).json()
    names = [item["id"] for item in first["result"] + page["result"]]
    assert sorted(names) == ["w0", "w1", "w2"]  # creation order (ties: by tag), no repeats
    assert page["result_info"] == {
        "page": 2,
        "per_page": 2,
        "count": 1,
        "total_count": 3,
        "total_pages": 2,
    }
    bad = world.client.get(f"{workers(world)}/scripts?per_page=0", headers=world.auth)
    failure(bad, 400, 12013)


def test_the_lists_total_counts_every_way_a_worker_comes_and_goes(scripts_world: World) -> None:
    """The total is the account's kept counter (migration 0013's triggers): an upload, a
    trigger naming a new tag, the CLI, a delete; another account's Workers apart. The fixture
    checks at the end that every account's counter equals its Workers."""
    world = scripts_world

    def total(account: World) -> int:
        listed = account.client.get(f"{workers(account)}/scripts", headers=account.auth).json()
        return int(listed["result_info"]["total_count"])

    ok(upload(world, "first"))
    trigger(world)  # its external_script_id registers a Worker by tag
    world.run(world.services.workers.create(world.account, "by-cli"))
    assert total(world) == 3
    other = world.new_account("second team")
    theirs = World(
        world.client, world.services, other, world.new_token(SCRIPTS_WRITE, account=other)
    )
    ok(upload(theirs, "first"))
    assert total(theirs) == 1
    ok(world.client.delete(f"{workers(world)}/scripts/first", headers=world.auth))
    ok(upload(world, "by-cli"))  # a known Worker's next version: no new Worker
    assert total(world) == 2 and total(theirs) == 1


def test_settings_subdomains_versions_deployments_and_delete(scripts_world: World) -> None:
    world = scripts_world
    ok(upload(world))
    script = f"{workers(world)}/scripts/my-worker"
    settings = ok(world.client.get(f"{script}/settings", headers=world.auth))
    assert settings["compatibility_date"] == "2025-01-01" and settings["bindings"] == []
    patched = world.client.patch(
        f"{script}/script-settings", json={"logpush": True, "tags": ["a"]}, headers=world.auth
    )
    assert ok(patched) == {
        "logpush": True,
        "observability": None,
        "tags": ["a"],
        "tail_consumers": None,
    }
    assert ok(world.client.get(f"{script}/script-settings", headers=world.auth))["logpush"]

    assert ok(world.client.get(f"{workers(world)}/subdomain", headers=world.auth))["subdomain"]
    put = world.client.put(
        f"{workers(world)}/subdomain", json={"subdomain": "my-team"}, headers=world.auth
    )
    assert ok(put) == {"subdomain": "my-team"}
    off = world.client.post(f"{script}/subdomain", json={"enabled": False}, headers=world.auth)
    assert ok(off) == {"enabled": False, "previews_enabled": False}
    assert ok(world.client.get(f"{script}/subdomain", headers=world.auth))["enabled"] is False

    body, kind = form({**META, "annotations": {"workers/message": "v2"}})
    version = ok(
        world.client.post(
            f"{script}/versions", content=body, headers={**world.auth, "Content-Type": kind}
        )
    )
    assert version["number"] == 2 and version["annotations"] == {"workers/message": "v2"}
    listed = world.client.get(f"{script}/versions", headers=world.auth).json()
    assert [item["number"] for item in listed["result"]["items"]] == [2, 1]
    assert listed["result_info"]["total_count"] == 2
    paged = world.client.get(f"{script}/versions?per_page=1&page=2", headers=world.auth).json()
    assert [item["number"] for item in paged["result"]["items"]] == [1]
    assert paged["result_info"]["total_count"] == 2 and paged["result_info"]["total_pages"] == 2
    got = ok(world.client.get(f"{script}/versions/{version['id']}", headers=world.auth))
    assert got["resources"]["script_runtime"]["compatibility_date"] == "2025-01-01"

    shares = {
        "strategy": "percentage",
        "versions": [{"version_id": version["id"], "percentage": 100}],
    }
    made = ok(world.client.post(f"{script}/deployments", json=shares, headers=world.auth))
    assert made["versions"] == [{"version_id": version["id"], "percentage": 100.0}]
    listed = ok(world.client.get(f"{script}/deployments", headers=world.auth))["deployments"]
    assert listed[0]["id"] == made["id"] and len(listed) == 2
    assert ok(world.client.get(f"{script}/deployments/{made['id']}", headers=world.auth)) == made
    service = ok(world.client.get(f"{workers(world)}/services/my-worker", headers=world.auth))
    assert service["default_environment"]["script"]["deployment_id"] == version["id"]

    assert ok(world.client.delete(script, headers=world.auth)) is None
    failure(world.client.get(f"{script}/settings", headers=world.auth), 404, 10007)
    assert ok(world.client.get(f"{workers(world)}/scripts", headers=world.auth)) == []


def test_a_service_worker_upload_names_its_script_by_body_part(scripts_world: World) -> None:
    world = scripts_world
    metadata = {"body_part": "script", "compatibility_date": "2025-01-01"}
    body, kind = form(metadata, {"script": b"addEventListener('fetch', () => {});"})
    sent = world.client.put(
        f"{workers(world)}/scripts/old-style",
        content=body,
        headers={**world.auth, "Content-Type": kind},
    )
    script = ok(sent)
    assert script["has_modules"] is False and script["entry_point"] == "script"


def test_secret_bindings_are_not_kept(scripts_world: World) -> None:
    world = scripts_world
    secret = "s3cr3t-value-that-must-never-leak"
    binding = {"type": "secret_text", "name": "API_KEY", "text": secret}
    body, kind = form({**META, "bindings": [binding]})
    ok(
        world.client.put(
            f"{workers(world)}/scripts/my-worker",
            content=body,
            headers={**world.auth, "Content-Type": kind},
        )
    )
    settings = ok(
        world.client.get(f"{workers(world)}/scripts/my-worker/settings", headers=world.auth)
    )
    assert settings["bindings"] == [{"type": "secret_text", "name": "API_KEY"}]


MULTIPART = (f"multipart/form-data; boundary={BOUNDARY}",)


def part(header: str) -> bytes:
    """An upload whose one part has this header line."""
    return f"--{BOUNDARY}\r\n{header}\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()


def part_of(name: str) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\nx\r\n'.encode()


@pytest.mark.parametrize(
    ("body", "kind", "detail"),
    [
        (b"{}", "application/json", "multipart/form-data"),
        (b"no parts here", f"multipart/form-data; boundary={BOUNDARY}", "no part"),
        (form(META)[0], "multipart/form-data", "no boundary"),
        (form(META, {})[0], f"multipart/form-data; boundary={BOUNDARY}", "names no part"),
        (form({"bindings": []})[0], f"multipart/form-data; boundary={BOUNDARY}", "main_module"),
        (
            form({**META, "compatibility_date": "soon"})[0],
            f"multipart/form-data; boundary={BOUNDARY}",
            "metadata",
        ),
        (form(META)[0][:-40], f"multipart/form-data; boundary={BOUNDARY}", "closing delimiter"),
        (f"--{BOUNDARY}xx".encode(), *MULTIPART, "line break"),
        (f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n".encode(), *MULTIPART, "never end"),
        (part("Content-Disposition form-data"), *MULTIPART, "Name: value"),
        (part("Content-Disposition: form-data"), *MULTIPART, "no Content-Disposition name"),
        (b"".join([part_of("m")] * 1001) + f"--{BOUNDARY}--".encode(), *MULTIPART, "more than"),
    ],
)
def test_a_malformed_upload_is_400(
    scripts_world: World, body: bytes, kind: str, detail: str
) -> None:
    world = scripts_world
    response = world.client.put(
        f"{workers(world)}/scripts/my-worker",
        content=body,
        headers={**world.auth, "Content-Type": kind},
    )
    error = failure(response, 400, 10021)
    assert detail in error["error_chain"][0]["message"]
    assert ok(world.client.get(f"{workers(world)}/scripts", headers=world.auth)) == []


def test_an_upload_over_the_limit_is_413(make_world: Any) -> None:
    world = make_world(max_script_bytes=4096)
    world.token = world.new_token(SCRIPTS_WRITE)
    body, kind = form(META, {"index.js": b"x" * 8192})
    response = world.client.put(
        f"{workers(world)}/scripts/my-worker",
        content=body,
        headers={**world.auth, "Content-Type": kind},
    )
    failure(response, 413, 10027)


def test_bad_bodies_and_names(scripts_world: World) -> None:
    world = scripts_world
    ok(upload(world))
    script = f"{workers(world)}/scripts/my-worker"
    failure(upload(world, "Not_A_Name"), 400, 10021)
    bad = world.client.put(
        f"{workers(world)}/subdomain", json={"subdomain": "-x"}, headers=world.auth
    )
    failure(bad, 400, 12002)
    over = {"strategy": "percentage", "versions": [{"version_id": "x", "percentage": 100}]}
    failure(world.client.post(f"{script}/deployments", json=over, headers=world.auth), 400, 10021)
    version = ok(world.client.get(f"{script}/versions", headers=world.auth))["items"][0]["id"]
    half = {"strategy": "percentage", "versions": [{"version_id": version, "percentage": 50}]}
    failure(world.client.post(f"{script}/deployments", json=half, headers=world.auth), 400, 10021)
    failure(world.client.post(f"{script}/subdomain", json={}, headers=world.auth), 400, 12002)


def test_a_subdomain_another_account_holds_is_409(scripts_world: World) -> None:
    world = scripts_world
    other = world.new_account()
    token = world.new_token(SCRIPTS_WRITE, account=other)
    taken = world.client.put(
        f"{workers(world, other)}/subdomain",
        json={"subdomain": "team"},
        headers=world.bearer(token),
    )
    ok(taken)
    again = world.client.put(
        f"{workers(world)}/subdomain", json={"subdomain": "team"}, headers=world.auth
    )
    failure(again, 409, 12049)


def test_concurrent_claims_of_one_subdomain_give_it_to_one_account(scripts_world: World) -> None:
    """The check before the write saw no owner for both (PostgreSQL: two transactions at once);
    the unique constraint decides, and the loser is 409, not a 500."""
    world = scripts_world
    accounts = [world.account, world.new_account("b"), world.new_account("c")]
    body = Subdomain(subdomain="team")

    async def together() -> list[Any]:
        claims = [world.services.scripts.set_subdomain(account, body) for account in accounts]
        return list(await asyncio.gather(*claims, return_exceptions=True))

    answers = world.run(together())
    assert sum(isinstance(answer, AlreadyExists) for answer in answers) == 2, answers
    assert sum(answer == body for answer in answers) == 1, answers
    shown = [world.run(world.services.scripts.subdomain(account)) for account in accounts]
    assert [item.subdomain for item in shown].count("team") == 1


def test_a_delete_and_writes_to_the_worker_at_once_never_fail_half_way(
    scripts_world: World,
) -> None:
    """A delete while versions and a deployment are written (PostgreSQL: transactions at
    once): each write is in before the delete, and deleted with the Worker, or after it and
    404; no IntegrityError on either side, and no row of the Worker is left behind."""
    world = scripts_world
    body, kind = form(META)
    parsed = read_upload(body, kind)
    deployments = world.services.deployments

    async def together(shares: CreateDeploymentRequest) -> list[Any]:
        calls = [
            world.services.scripts.delete(world.account, "my-worker"),
            deployments.upload_version(world.account, "my-worker", parsed, None, "api"),
            deployments.create(world.account, "my-worker", shares, None, "api"),
            deployments.upload_version(world.account, "my-worker", parsed, None, "api"),
        ]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    for _ in range(3):
        script = ok(upload(world))
        share = DeploymentVersion(version_id=script["deployment_id"], percentage=100)
        answers = world.run(together(CreateDeploymentRequest("percentage", [share])))
        assert answers[0] is None, answers
        written = answers[1:]
        assert all(isinstance(a, Version | Deployment | WorkerNotFound) for a in written), answers
        assert world.run(leftovers(world, script["tag"])) == 0


async def leftovers(world: World, tag: str) -> int:
    async with world.services.db.connection() as conn:
        found = 0
        for table in ("worker_versions", "worker_deployments", "workers"):
            row = await conn.one(
                f"SELECT COUNT(*) AS n FROM {table} WHERE tag = :tag", {"tag": tag}
            )
            found += int(row["n"]) if row else 0
        return found


READS = [
    "/scripts",
    "/services/my-worker",
    "/subdomain",
    "/scripts/my-worker/settings",
    "/scripts/my-worker/script-settings",
    "/scripts/my-worker/subdomain",
    "/scripts/my-worker/versions",
    "/scripts/my-worker/deployments",
]
UNKNOWN = [
    "/services/nobody",
    "/scripts/nobody/settings",
    "/scripts/nobody/script-settings",
    "/scripts/nobody/subdomain",
    "/scripts/nobody/versions",
    "/scripts/nobody/deployments",
    "/scripts/my-worker/versions/00000000-0000-4000-8000-000000000000",
    "/scripts/my-worker/deployments/00000000-0000-4000-8000-000000000000",
]


@pytest.mark.parametrize("path", UNKNOWN)
def test_unknown_ids_are_10007(scripts_world: World, path: str) -> None:
    world = scripts_world
    ok(upload(world))
    failure(world.client.get(workers(world) + path, headers=world.auth), 404, 10007)


@pytest.mark.parametrize("path", READS[1:2] + READS[3:])
def test_another_accounts_worker_is_not_found(scripts_world: World, path: str) -> None:
    world = scripts_world
    ok(upload(world))
    other = world.new_account()
    token = world.new_token(SCRIPTS_WRITE, account=other)
    failure(world.client.get(workers(world, other) + path, headers=world.bearer(token)), 404, 10007)
    # ... and with that token on the first account's paths: no permission there.
    failure(world.client.get(workers(world) + path, headers=world.bearer(token)), 403, 10000)


@pytest.mark.parametrize("path", READS)
def test_auth_failures(scripts_world: World, path: str) -> None:
    world = scripts_world
    ok(upload(world))
    url = workers(world) + path
    failure(world.client.get(url), 400, 9106)
    failure(world.client.get(url, headers={"Authorization": "Basic x"}), 400, 6003)
    failure(world.client.get(url, headers=world.bearer("x" * 40)), 401, 1000)
    ci_only = world.new_token("Workers CI Write")
    failure(world.client.get(url, headers=world.bearer(ci_only)), 403, 10000)
    # Read is enough to read; account-owned tokens work on the Workers platform.
    reader = world.new_token("Workers Scripts Read", owner_type="account")
    ok(world.client.get(url, headers=world.bearer(reader)))


def test_writes_need_write(scripts_world: World) -> None:
    world = scripts_world
    reader = world.new_token("Workers Scripts Read")
    body, kind = form(META)
    headers = {**world.bearer(reader), "Content-Type": kind}
    failure(
        world.client.put(f"{workers(world)}/scripts/my-worker", content=body, headers=headers),
        403,
        10000,
    )
    ok(upload(world))
    script = f"{workers(world)}/scripts/my-worker"
    failure(world.client.delete(script, headers=world.bearer(reader)), 403, 10000)
    failure(
        world.client.post(
            f"{script}/subdomain", json={"enabled": True}, headers=world.bearer(reader)
        ),
        403,
        10000,
    )


def test_user_and_memberships(scripts_world: World) -> None:
    world = scripts_world
    user = ok(world.client.get("/client/v4/user", headers=world.auth))
    assert user["email"] == "admin@buildsd.local"
    memberships = world.client.get("/client/v4/memberships", headers=world.auth).json()
    assert [item["account"]["id"] for item in memberships["result"]] == [world.account]
    assert memberships["result_info"]["total_count"] == 1
    failure(world.client.get("/client/v4/user"), 400, 9106)
    failure(world.client.get("/client/v4/memberships", headers=world.bearer("x" * 40)), 401, 1000)
    account_token = world.new_token(SCRIPTS_WRITE, owner_type="account")
    failure(world.client.get("/client/v4/user", headers=world.bearer(account_token)), 403, 9109)


def test_strict_mode_keeps_the_workers_platform_calls(make_world: Any) -> None:
    world = make_world(strict=True)
    world.token = world.new_token(SCRIPTS_WRITE)
    ok(upload(world))
    assert ok(world.client.get(f"{workers(world)}/scripts", headers=world.auth))[0]["id"]
