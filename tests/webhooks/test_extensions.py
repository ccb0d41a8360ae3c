"""The delivery extensions (D7): list, replay, explain; removed in strict mode."""

from __future__ import annotations

import pytest

from tests.api.flows import base, failure, ok
from tests.conftest import World
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    deliver_github,
    deliveries,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import github_commit, github_push


def test_deliveries_are_listed_newest_first_in_pages(world: World) -> None:
    add_trigger(world, connect(world))
    acks = [accepted(deliver_github(world, github_push(f"b{i}"))) for i in range(5)]
    settle(world)
    url = base(world) + "/webhook_deliveries"
    response = world.client.get(url, params={"per_page": 2, "page": 2}, headers=world.auth)
    body = response.json()
    assert body["result_info"] == {
        "page": 2, "per_page": 2, "count": 2, "total_count": 5, "total_pages": 3,
    }  # fmt: skip
    assert [d["delivery_uuid"] for d in body["result"]] == [
        acks[2]["delivery_uuid"],
        acks[1]["delivery_uuid"],
    ]
    item = body["result"][0]
    assert item["provider"] == "github" and item["event"] == "push" and item["branch"] == "b2"
    assert item["status"] == "accepted" and item["processed_on"] >= item["received_on"]
    failure(world.client.get(url, params={"per_page": 0}, headers=world.auth), 400, 12013)


def test_deliveries_of_one_millisecond_list_as_received(world: World, frozen_clock: None) -> None:
    add_trigger(world, connect(world))
    acks = [accepted(deliver_github(world, github_push(f"b{i}"))) for i in range(12)]
    settle(world)
    url = base(world) + "/webhook_deliveries"
    listed = world.client.get(url, params={"per_page": 100}, headers=world.auth).json()["result"]
    assert len({d["received_on"] for d in listed}) == 1
    assert [d["delivery_uuid"] for d in listed] == [a["delivery_uuid"] for a in acks][::-1]


def test_replay_matches_again_against_current_triggers(world: World) -> None:
    setup = connect(world)
    add_trigger(world, setup, trigger_name="first", branch_includes=["main"])
    ack = accepted(deliver_github(world, github_push()))
    settle(world)
    add_trigger(world, setup, "e5" * 16, trigger_name="second", branch_includes=["*"])
    url = base(world) + f"/webhook_deliveries/{ack['delivery_uuid']}/replay"
    replayed = ok(world.client.post(url, headers=world.auth))
    assert [d["trigger_name"] for d in replayed["decisions"]] == ["first", "second"]
    assert {d["decision"] for d in replayed["decisions"]} == {"built"}
    assert len(worker_builds(world)) == 2 and len(worker_builds(world, "e5" * 16)) == 1
    assert deliveries(world)[0]["decisions"] == replayed["decisions"]


def test_replay_refuses_what_it_cannot_replay(world: World) -> None:
    add_trigger(world, connect(world))
    tag = accepted(deliver_github(world, github_push(ref="refs/tags/v1")), "ignored")
    settle(world)
    url = base(world) + "/webhook_deliveries/{}/replay"
    error = failure(
        world.client.post(url.format(tag["delivery_uuid"]), headers=world.auth), 409, 13004
    )
    assert "ignored" in error["error_chain"][0]["message"]
    missing = "6f1c9e3e-1111-4222-8333-944455556666"
    failure(world.client.post(url.format(missing), headers=world.auth), 404, 12000)
    # Another account cannot see, let alone replay, this account's delivery.
    push = accepted(deliver_github(world, github_push()))
    settle(world)
    other = world.new_account()
    token = world.new_token("Workers CI Write", account=other)
    failure(
        world.client.post(
            url.format(push["delivery_uuid"]).replace(world.account, other),
            headers=world.bearer(token),
        ),
        404,
        12000,
    )


def test_explain_uses_the_rule_deliveries_use(world: World) -> None:
    trigger = add_trigger(
        world,
        connect(world),
        branch_includes=["main", "release/*"],
        branch_excludes=["release/old"],
        path_includes=["src/*"],
        path_excludes=["*.md"],
    )
    url = base(world) + f"/triggers/{trigger['trigger_uuid']}/explain"

    def explain(**body: object) -> dict:
        return dict(ok(world.client.post(url, json=body, headers=world.auth)))

    assert explain(branch="main", changed_files=["src/a.ts"]) == {
        "would_build": True,
        "decision": "built",
        "rule": "path_includes",
        "pattern": "src/*",
        "reason": "'src/a.ts' matches path_includes pattern 'src/*'",
    }
    assert explain(branch="release/old", changed_files=["src/a.ts"])["rule"] == "branch_excludes"
    assert explain(branch="dev", changed_files=[])["decision"] == "not_matched"
    skipped = explain(branch="main", changed_files=["src/README.md", "docs/x"])
    assert (skipped["would_build"], skipped["decision"]) == (False, "skipped")
    assert explain(branch="main", changed_files=[])["rule"] == "bypass_no_changed_files"
    many = explain(branch="main", changed_files=["x.md"], commit_count=20)
    assert many["rule"] == "bypass_many_commits"
    # And a real push of the same shape is decided the same way.
    ack = accepted(deliver_github(world, github_push("main", [github_commit(modified=("x.md",))])))
    settle(world)
    [decision] = deliveries(world)[0]["decisions"]
    assert ack["delivery_uuid"] == deliveries(world)[0]["delivery_uuid"]
    expected = explain(branch="main", changed_files=["x.md"])
    assert {k: decision[k] for k in ("rule", "pattern", "reason", "decision")} == {
        k: expected[k] for k in ("rule", "pattern", "reason", "decision")
    }
    failure(world.client.post(url, json={"branch": "main"}, headers=world.auth), 400, 12002)
    failure(
        world.client.post(url, json={"branch": "", "changed_files": []}, headers=world.auth),
        400,
        12002,
    )
    missing = base(world) + "/triggers/6f1c9e3e-1111-4222-8333-944455556666/explain"
    failure(
        world.client.post(
            missing, json={"branch": "main", "changed_files": []}, headers=world.auth
        ),
        404,
        12000,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/webhook_deliveries"),
        ("POST", "/webhook_deliveries/6f1c9e3e-1111-4222-8333-944455556666/replay"),
        ("POST", "/triggers/6f1c9e3e-1111-4222-8333-944455556666/explain"),
    ],
)
def test_strict_mode_removes_the_extensions(make_world, method: str, path: str) -> None:
    world = make_world(strict=True)
    response = world.client.request(method, base(world) + path, headers=world.auth, json={})
    failure(response, 404, 12000)
