"""Hostile input: each gets a 4xx in the envelope (or, for abuse of HTTP itself that the app
never sees, a 431 in the envelope or a closed connection), nothing is written, memory stays
bounded. Choices are in docs/compatibility.md, "Hostile input".

The operations come from the route table, so a new route cannot escape these tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from buildsd.api.endpoint import Operation
from buildsd.api.routes import OPERATIONS
from tests.api.flows import TAG, base, build_token, connection, failure, ok, trigger_body
from tests.conftest import World

_PARAM = re.compile(r"{([^}]+)}")
WITH_BODY = [op for op in OPERATIONS if op.body is not None]
WITH_IDS = [op for op in OPERATIONS if set(_PARAM.findall(op.path)) - {"account_id"}]
# Every table a request could write to (the audit log records refusals too: that is its job).
RESOURCES = (
    "repo_connections",
    "workers",
    "build_tokens",
    "triggers",
    "environment_variables",
    "builds",
    "deploy_hooks",
    "webhook_deliveries",
)
MIB = 1024 * 1024


def url_of(op: Operation, world: World, value: str = "6f1c9e3e-1111-4222-8333-944455556666") -> str:
    """The operation's path with the world's account and `value` for every other id."""
    return _PARAM.sub(lambda m: world.account if m[1] == "account_id" else value, op.path)


def counts(world: World) -> dict[str, int]:
    async def read() -> dict[str, int]:
        async with world.services.db.connection() as conn:
            return {
                name: (await conn.all(f"SELECT count(*) AS n FROM {name}"))[0]["n"]
                for name in RESOURCES
            }

    return dict(world.run(read()))


@pytest.fixture
def untouched(world: World) -> Iterator[World]:
    """The world; at the end, no resource table holds a row."""
    yield world
    assert counts(world) == dict.fromkeys(RESOURCES, 0)


def send(world: World, op: Operation, content: bytes, **headers: str) -> Any:
    return world.client.request(
        op.method,
        url_of(op, world),
        content=content,
        headers={"Content-Type": "application/json", **world.auth, **headers},
    )


def refused(response: Any, status: int = 400, code: int = 12002, what: Any = "") -> dict[str, Any]:
    """The envelope of a refusal with this status and code (`what` names the case if not)."""
    assert response.status_code == status, (what, response.status_code, response.text)
    error = failure(response, status, code)
    assert error["message"], error
    return error


# --- bodies ---------------------------------------------------------------------------------


def nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + close * depth


DEEP = [
    nested(100_000),
    nested(100_000, b'{"a":', b"}")[: -len(b"}")] + b"1" + b"}" * 100_000,  # objects
    b'{"trigger_name": ' + nested(50_000) + b"}",  # inside a field
    b"[" * 100_000,  # never closed
]


def test_deeply_nested_json_is_a_bad_body(untouched: World) -> None:
    for op in WITH_BODY:
        for body in DEEP:
            refused(send(untouched, op, body), what=(op.operation_id, body[:20]))


HUGE = [  # each within BUILDSD_MAX_BODY_BYTES: read, decoded, refused
    json.dumps({"trigger_name": "x" * 900_000}).encode(),
    json.dumps({"branch_includes": ["main"] * 100_000}).encode(),
    json.dumps([0] * 300_000).encode(),
    b'"' + b"a" * 1_000_000 + b'"',
]
BIG = json.dumps({"trigger_name": "x" * (2 * MIB)}).encode()  # over it


def test_huge_arrays_and_strings(untouched: World) -> None:
    world = untouched
    assert all(len(body) <= MIB for body in HUGE)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(BIG), 64 * 1024):
            yield BIG[start : start + 64 * 1024]

    for op in WITH_BODY:
        for body in HUGE:
            refused(send(world, op, body), what=(op.operation_id, body[:20]))
        # Over the limit: 413 before the body is read, whether its length is declared or not.
        refused(send(world, op, BIG), 413, what=op.operation_id)
        response = world.client.request(
            op.method, url_of(op, world), content=chunks(), headers=world.auth
        )
        refused(response, 413, what=op.operation_id)


MALFORMED = [
    b'{"repo_name": "\\ud800"}',  # a lone high surrogate
    b'{"repo_name": "\\udc00x"}',  # a lone low surrogate
    b'{"repo_name": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8)
    b'{"repo_name": "\xff\xfe"}',  # not UTF-8
    b'{"repo_name": "a\x01b"}',  # a raw control character (JSON wants it escaped)
    b'{"repo_name": "a\\u0000b", "repo_name": "b"}',  # NUL anywhere is refused
    b"\x00",
    b"",
    b"null",
    b'"a string"',
    b"[]",
    b"1e999999",
    b"{",
]


def test_malformed_json(untouched: World) -> None:
    op = next(op for op in OPERATIONS if op.operation_id == "upsertRepoConnection")
    for body in MALFORMED:
        refused(send(untouched, op, body), what=body)


# --- names: control characters and Unicode ---------------------------------------------------

CONTROL = [
    "\x00",
    "a\x00b",
    "\x01",
    "line\nbreak",
    "carriage\rreturn",
    "tab\tx",
    "\x1b[31mred",
    "\x7f",
]
UNICODE = [
    "\u202eexe.tnemyolped",  # right-to-left override
    "🚀 deploy 🚀",  # astral plane (a surrogate pair in JSON)
    "部署 main",
    "e\u0301 combining",
    "zero\u200bwidth\u200djoiner",
    "line\u2028separator",  # not C0: accepted, as all Unicode outside C0 and DEL
    "\ufeffbom",
    "a" * 256,
]


def _hook_world(world: World) -> str:
    """A Worker with a trigger, for deploy hooks; returns the hooks' URL."""
    tag = str(world.run(world.services.workers.create(world.account, "my-worker")))
    body = trigger_body(connection(world), build_token(world), external_script_id=tag)
    ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth))
    return base(world) + "/workers/my-worker/deploy_hooks"


def _name_cases(world: World) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, url, field, the rest of a valid body) for names that need no other row."""
    b = base(world)
    conn = {
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": "562843111",
        "repo_name": "my-worker",
    }
    token = {
        "build_token_name": "deploy",
        "build_token_secret": "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T",
        "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b",
    }
    return [
        ("PUT", b + "/repos/connections", "repo_name", conn),
        ("PUT", b + "/repos/connections", "provider_account_name", conn),
        ("POST", b + "/tokens", "build_token_name", token),
    ]


def test_control_characters_in_names_are_refused_with_a_pointer(world: World) -> None:
    b = base(world)
    hooks = _hook_world(world)
    trigger = ok(world.client.get(b + "/triggers", headers=world.auth))[0]
    before = counts(world)
    cases = [*_name_cases(world)]
    url = f"{b}/triggers/{trigger['trigger_uuid']}"
    cases.append(("PATCH", url, "trigger_name", {}))
    cases.append(("POST", hooks, "deploy_hook_name", {"branch": "main"}))
    for value in CONTROL:
        for method, target, field, template in cases:
            body = {**template, field: value}
            error = refused(world.client.request(method, target, json=body, headers=world.auth))
            assert error["source"]["pointer"] == f"/{field}", (field, value, error)
    assert counts(world) == before
    assert ok(world.client.get(url, headers=world.auth)) == trigger


def test_control_characters_in_branches_patterns_and_directories_are_refused(
    world: World,
) -> None:
    """Branches, branch and path patterns, root directories, grant ids: single-line, like the
    names (a newline in a branch forged lines in build logs). Commands and variable values may
    span lines (scripts, certificates): see test_a_nul_anywhere_in_a_body_is_refused."""
    b = base(world)
    hooks = _hook_world(world)
    trigger = ok(world.client.get(b + "/triggers", headers=world.auth))[0]
    url = f"{b}/triggers/{trigger['trigger_uuid']}"
    token = trigger["build_token_uuid"]
    repo = {
        "provider_type": "github",
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "repo_id": "77",
        "repo_name": "other",
        "branch": "main",
    }
    worker = {
        "script_tag": "cd" * 16,
        "git_repository": repo,
        "production_settings": {
            "build_command": "",
            "deploy_command": "npx wrangler deploy",
            "build_token_uuid": token,
        },
    }
    before = counts(world)
    for value in CONTROL:
        settings = {**worker["production_settings"], "root_directory": value}
        cases: list[tuple[str, str, Any, str]] = [
            ("PATCH", url, {"branch_includes": ["main", value]}, "/branch_includes/1"),
            ("PATCH", url, {"branch_excludes": [value]}, "/branch_excludes/0"),
            ("PATCH", url, {"path_includes": [value]}, "/path_includes/0"),
            ("PATCH", url, {"path_excludes": [value]}, "/path_excludes/0"),
            ("PATCH", url, {"root_directory": value}, "/root_directory"),
            ("POST", url + "/builds", {"branch": value}, "/branch"),
            ("POST", url + "/explain", {"branch": value, "changed_files": []}, "/branch"),
            ("POST", hooks, {"deploy_hook_name": "d", "branch": value}, "/branch"),
            (
                "POST",
                b + "/workers",
                {**worker, "git_repository": {**repo, "branch": value}},
                "/git_repository/branch",
            ),
            (
                "POST",
                b + "/workers",
                {**worker, "git_repository": {**repo, "grant_id": value}},
                "/git_repository/grant_id",
            ),
            (
                "POST",
                b + "/workers",
                {**worker, "production_settings": settings},
                "/production_settings/root_directory",
            ),
        ]
        for method, target, body, pointer in cases:
            response = world.client.request(method, target, json=body, headers=world.auth)
            assert refused(response, what=(body, value))["source"]["pointer"] == pointer
    assert counts(world) == before
    assert ok(world.client.get(url, headers=world.auth)) == trigger


def test_any_other_unicode_in_names_is_kept_exactly(world: World) -> None:
    b = base(world)
    hooks = _hook_world(world)
    trigger = ok(world.client.get(b + "/triggers", headers=world.auth))[0]
    url = f"{b}/triggers/{trigger['trigger_uuid']}"
    for value in UNICODE:
        changed = ok(world.client.patch(url, json={"trigger_name": value}, headers=world.auth))
        assert changed["trigger_name"] == value
        assert ok(world.client.get(url, headers=world.auth))["trigger_name"] == value
        body = {"deploy_hook_name": value[:58], "branch": value}
        hook = ok(world.client.post(hooks, json=body, headers=world.auth))
        assert (hook["deploy_hook_name"], hook["branch"]) == (value[:58], value)
        for method, target, field, template in _name_cases(world):
            body = {**template, field: value}
            result = ok(world.client.request(method, target, json=body, headers=world.auth))
            assert result[field] == value


def test_a_nul_anywhere_in_a_body_is_refused_with_a_pointer(world: World) -> None:
    b = base(world)
    hooks = _hook_world(world)
    trigger = ok(world.client.get(b + "/triggers", headers=world.auth))[0]
    url = f"{b}/triggers/{trigger['trigger_uuid']}"
    before = counts(world)
    for method, target, body, pointer in [
        ("PATCH", url, {"build_command": "npm run build\x00"}, "/build_command"),
        ("PATCH", url, {"branch_includes": ["main", "a\x00"]}, "/branch_includes/1"),
        ("PATCH", url, {"root_directory": "/a\x00"}, "/root_directory"),
        ("PATCH", url + "/environment_variables", {"KEY": {"value": "a\x00b"}}, "/KEY/value"),
        ("POST", url + "/builds", {"branch": "a\x00b"}, "/branch"),
        (
            "POST",
            url + "/explain",
            {"branch": "main", "changed_files": ["a\x00"]},
            "/changed_files/0",
        ),
        ("POST", hooks, {"deploy_hook_name": "d", "branch": "m", "x\x00": 1}, "/x\x00"),
    ]:
        response = world.client.request(method, target, json=body, headers=world.auth)
        assert refused(response)["source"]["pointer"] == pointer, body
    # A backslash before u0000 is not NUL: "\\u0000" is six characters of text.
    text = "echo \\u0000"
    changed = ok(world.client.patch(url, json={"build_command": text}, headers=world.auth))
    assert changed["build_command"] == text
    assert counts(world) == before


# --- ids in paths ----------------------------------------------------------------------------

HOSTILE_IDS = [
    "..",
    "...",
    "..%2F..%2Ftokens",
    "%2e%2e%2f%2e%2e%2ftokens",
    "%2F",
    "a%2Fb",
    "%252F",
    "%00",
    "a%00b",
    "%0d%0aX-Injected:%201",
    "%E2%80%AE",
    "%F0%9F%9A%80",
    "%ED%A0%80",
    "%ff%fe",
    "%",
    "x" * 5000,
    "6f1c9e3e-1111-4222-8333-944455556666%00",
    "6f1c9e3e-1111-4222-8333-944455556666%0a",
    TAG + "%0a",
]


def test_hostile_ids_in_paths(untouched: World) -> None:
    world = untouched
    for op in WITH_IDS:
        for value in HOSTILE_IDS:
            url = url_of(op, world, value)
            response = world.client.request(op.method, url, json={}, headers=world.auth)
            what = (op.operation_id, value[:40], response.status_code, response.text[:200])
            read = op.method == "GET" and response.status_code == 200
            assert 400 <= response.status_code < 500 or read, what
            body = response.json()
            assert body["success"] is read and type(body["errors"]) is list, what
            if read and response.url.path.endswith("/workers/subdomain"):
                # `scripts/../subdomain` is the account's own workers.dev subdomain: it exists.
                assert value == ".." and "subdomain" in body["result"], what
            elif read:  # a read of something that cannot exist finds nothing
                assert body["result"] in ([], {}, {"builds": {}}), what
            else:
                assert type(body["errors"][0]["code"]) is int, what


# --- duplicate keys and content types -------------------------------------------------------

CONNECTION = (
    b'{"provider_account_id": "41612145", "provider_account_name": "octo-org", '
    b'"provider_type": "github", "repo_id": "562843111", "repo_name": "my-worker"}'
)


def test_duplicate_keys_the_last_one_wins(world: World) -> None:
    """RFC 8259 leaves duplicates to the parser; buildsd keeps the last value, as JavaScript's
    JSON.parse, Go's encoding/json and Python's json do, and the answer shows what was kept."""
    body = CONNECTION[:-1] + b', "repo_name": "second", "repo_name": "third"}'
    url = base(world) + "/repos/connections"
    result = ok(world.client.put(url, content=body, headers=world.auth))
    assert result["repo_name"] == "third"
    trigger = ok(
        world.client.post(
            base(world) + "/triggers",
            json=trigger_body(result, build_token(world)),
            headers=world.auth,
        )
    )
    variables = f"{base(world)}/triggers/{trigger['trigger_uuid']}/environment_variables"
    twice = b'{"KEY": {"value": "first"}, "KEY": {"value": "second"}}'
    assert (
        ok(world.client.patch(variables, content=twice, headers=world.auth))["KEY"]["value"]
        == "second"
    )


CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "garbage/\x7f",
]


def test_the_body_is_json_whatever_the_content_type(world: World) -> None:
    url = base(world) + "/repos/connections"
    for content_type in CONTENT_TYPES:
        headers = {**world.auth, **({"Content-Type": content_type} if content_type else {})}
        response = world.client.put(url, content=CONNECTION, headers=headers)
        assert ok(response)["repo_name"] == "my-worker", content_type


def test_a_real_form_or_multipart_body_is_a_bad_body(untouched: World) -> None:
    world = untouched
    url = base(world) + "/repos/connections"
    form = {
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": "562843111",
        "repo_name": "my-worker",
    }
    refused(world.client.put(url, data=form, headers=world.auth))
    refused(world.client.put(url, files={"file": ("c.json", CONNECTION)}, headers=world.auth))
