"""Hostile deliveries, validly signed: a clear 4xx, never a 500, never a build."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.flows import failure
from tests.conftest import World
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    deliver_github,
    deliver_gitlab,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import (
    body_of,
    github_headers,
    github_pull_request,
    github_push,
    gitlab_headers,
    gitlab_merge_request,
    gitlab_push,
)


def rows(world: World) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with world.services.db.connection() as conn:
            found = await conn.all("SELECT status, attempts, branch FROM webhook_deliveries")
            return [dict(row) for row in found]

    return list(world.run(read()))


def test_a_body_over_the_limit_is_413_before_it_is_read(hooks: Callable[..., World]) -> None:
    world = hooks(max_body_bytes=4096)
    add_trigger(world, connect(world))
    payload = github_push()
    payload["padding"] = "x" * 5000
    failure(deliver_github(world, payload), 413, 12002)
    body = body_of(payload)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = world.client.post("/webhooks/github", content=chunks(), headers=github_headers(body))
    failure(response, 413, 12002)
    settle(world)
    assert rows(world) == [] and worker_builds(world) == []


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"zen": ' + nested(100_000) + b', "ref": "refs/heads/main"}', ""),
        (b'{"ref": "refs/heads/main", "commits": ' + nested(5000) + b"}", "/commits/0"),
        (b'{"ref": "refs/heads/main", "after": "', ""),  # truncated
        (b"not json", ""),
        (b"", ""),
        (b"[]", ""),
        (b'"a string"', ""),
        (b'{"ref": "refs/heads/\xff\xfe"}', ""),  # not UTF-8
    ],
)
def test_malformed_bodies(world: World, body: bytes, pointer: str) -> None:
    add_trigger(world, connect(world))
    response = world.client.post("/webhooks/github", content=body, headers=github_headers(body))
    error = failure(response, 400, 13003)
    assert error["message"] == "Invalid webhook payload" and error["error_chain"][0]["message"]
    assert rows(world) == []


def _mutated(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = github_push()
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "pointer"),
    [
        (("repository",), KeyError, ""),  # missing repository
        (("repository",), None, "/repository"),
        (("repository",), [], "/repository"),
        (("repository", "id"), KeyError, "/repository"),
        (("repository", "id"), -1, "/repository/id"),
        (("repository", "id"), 1.5, "/repository/id"),
        (("repository", "id"), "x" * 300, "/repository/id"),
        (("repository", "full_name"), 7, "/repository/full_name"),
        (("ref",), 5, "/ref"),
        (("ref",), KeyError, ""),
        (("after",), "not-a-sha", "/after"),
        (("commits",), "many", "/commits"),
        (("commits", 0, "modified"), [1, 2], "/commits/0/modified/0"),
        (("commits", 0, "added"), {"a": 1}, "/commits/0/added"),
        (("head_commit", "message"), ["x"], "/head_commit/message"),
        (("deleted",), "yes", "/deleted"),
    ],
)
def test_unexpected_shapes(world: World, path: tuple[Any, ...], value: Any, pointer: str) -> None:
    add_trigger(world, connect(world))
    error = failure(deliver_github(world, _mutated(path, value)), 400, 13003)
    assert error.get("source", {}).get("pointer", "") == pointer, error
    if value is KeyError and path == ("repository",):
        assert "repository" in error["error_chain"][0]["message"]
    settle(world)
    assert rows(world) == [] and worker_builds(world) == []


def test_other_providers_shapes(world: World) -> None:
    add_trigger(world, connect(world, "gitlab"), branch_includes=["*"])
    push = gitlab_push()
    del push["project"]
    failure(
        world.client.post("/webhooks/gitlab", content=body_of(push), headers=gitlab_headers()),
        400,
        13003,
    )
    mr = gitlab_merge_request()
    del mr["object_attributes"]["last_commit"]
    response = world.client.post(
        "/webhooks/gitlab", content=body_of(mr), headers=gitlab_headers("Merge Request Hook")
    )
    assert failure(response, 400, 13003)["source"]["pointer"] == "/object_attributes/last_commit"
    pr = github_pull_request()
    pr["pull_request"]["head"]["sha"] = 12
    failure(deliver_github(world, pr, "pull_request"), 400, 13003)
    headless = body_of(github_push())
    headers = github_headers(headless)
    del headers["X-GitHub-Event"]
    failure(world.client.post("/webhooks/github", content=headless, headers=headers), 400, 13003)
    settle(world)
    assert rows(world) == []


def test_nul_characters_never_reach_the_database(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["*"])
    payload = github_push("main")  # a NUL in the branch: ignored (the test below)
    payload["head_commit"]["message"] = "a\u0000b"
    payload["repository"]["full_name"] = "octo-org/\u0000my-worker"
    accepted(deliver_github(world, payload))
    settle(world)
    [build] = worker_builds(world)
    assert build["build_trigger_metadata"]["branch"] == "main"
    assert build["build_trigger_metadata"]["commit_message"] == "ab"


@pytest.mark.parametrize(
    "branch", ["main\nBuild completed", "a\rb", "x\x1b[2Ky", "d\x7fel", "ma\x00in"]
)
def test_a_branch_with_a_control_character_is_ignored_not_built(world: World, branch: str) -> None:
    """No git ref holds a control character (git check-ref-format): such a delivery is forged,
    so it is stored as ignored, with the reason, and builds nothing (its branch would have
    forged lines in the build log)."""
    add_trigger(world, connect(world), branch_includes=["*"])
    sent = [
        deliver_github(world, github_push(branch)),
        deliver_github(world, github_pull_request(branch=branch), event="pull_request"),
        deliver_gitlab(world, gitlab_push(branch)),
        deliver_gitlab(world, gitlab_merge_request(branch=branch), event="Merge Request Hook"),
    ]
    for response in sent:
        ack = accepted(response, "ignored")
        assert "control character" in ack["reason"] and branch not in ack["reason"]
    settle(world)
    assert worker_builds(world) == []
    assert all(row["branch"] == "" for row in rows(world))
    accepted(deliver_github(world, github_push("main")))  # a real branch still builds
    settle(world)
    assert [b["build_trigger_metadata"]["branch"] for b in worker_builds(world)] == ["main"]


# --- property: whatever a signed sender sends, the answer is never a 5xx -------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["ref", "after", "repository", "id", "commits", "added", "head_commit", "action",
             "pull_request", "head", "sha", "project", "object_attributes", "last_commit",
             "checkout_sha", "deleted", "source_branch", "full_name", "message", "oldrev"]
        )
        | st.text(max_size=8),
        children,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip
SEEDS: list[tuple[str, str, Callable[[], Any]]] = [
    ("github", "push", github_push),
    ("github", "pull_request", github_pull_request),
    ("gitlab", "Push Hook", gitlab_push),
    ("gitlab", "Merge Request Hook", gitlab_merge_request),
    ("github", "ping", dict),
    ("gitlab", "Tag Push Hook", gitlab_push),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _post(world: World, provider: str, event: str, body: bytes) -> int:
    headers = github_headers(body, event) if provider == "github" else gitlab_headers(event)
    return world.client.post(f"/webhooks/{provider}", content=body, headers=headers).status_code


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.sampled_from(SEEDS),
    replacement=JSON,
    choice=st.integers(min_value=0),
    whole=st.booleans(),
)
def test_random_payloads_never_get_a_5xx(
    world: World,
    seed: tuple[str, str, Callable[[], Any]],
    replacement: Any,
    choice: int,
    whole: bool,
) -> None:
    provider, event, make = seed
    payload: Any = copy.deepcopy(make())
    paths = _paths(payload)
    if whole or not paths:
        payload = replacement
    else:
        path = paths[choice % len(paths)]
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = replacement
    status = _post(world, provider, event, json.dumps(payload).encode())
    assert status in (200, 400), (status, payload)
    settle(world)
    assert all(row["attempts"] == 0 for row in rows(world))
