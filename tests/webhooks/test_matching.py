"""Matching, as Workers Builds does it: branch patterns, then path filters, per live trigger."""

from __future__ import annotations

from tests.api.flows import base, ok
from tests.conftest import World
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    decisions,
    deliver_github,
    deliver_gitlab,
    deliveries,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import (
    REPO_ID,
    SHA,
    github_commit,
    github_pull_request,
    github_push,
    gitlab_commit,
    gitlab_merge_request,
    gitlab_push,
)

MAIN, RELEASE, ANY, NOT_WIP = "a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16


def test_branch_patterns(world: World) -> None:
    setup = connect(world)
    add_trigger(world, setup, MAIN, trigger_name="main", branch_includes=["main"])
    add_trigger(world, setup, RELEASE, trigger_name="release", branch_includes=["release/*"])
    add_trigger(world, setup, ANY, trigger_name="any", branch_includes=["*"])
    add_trigger(
        world, setup, NOT_WIP, trigger_name="not-wip", branch_includes=["*"],
        branch_excludes=["wip/*", "*-draft"],
    )  # fmt: skip
    built: dict[str, set[str]] = {}
    for branch in ("main", "release/2024.05", "wip/spike", "feature-draft", "mainline"):
        ack = accepted(deliver_github(world, github_push(branch)))
        settle(world)
        found = decisions(world, ack["delivery_uuid"])
        built[branch] = {name for name, d in found.items() if d["decision"] == "built"}
        assert {d["decision"] for d in found.values()} <= {"built", "not_matched"}
    assert built == {
        "main": {"main", "any", "not-wip"},
        "release/2024.05": {"release", "any", "not-wip"},
        "wip/spike": {"any"},
        "feature-draft": {"any"},
        "mainline": {"any", "not-wip"},
    }
    found = decisions(world, deliveries(world)[-3]["delivery_uuid"])  # wip/spike
    assert found["not-wip"]["rule"] == "branch_excludes"
    assert found["not-wip"]["pattern"] == "wip/*"
    assert (
        found["not-wip"]["reason"] == "branch 'wip/spike' matches branch_excludes pattern 'wip/*'"
    )
    assert found["main"]["rule"] == "branch_includes" and found["main"]["build_uuid"] is None
    # A branch a trigger does not build leaves no record in that Worker's build list.
    assert len(worker_builds(world, MAIN)) == 1 and len(worker_builds(world, ANY)) == 5


def test_path_filters_and_their_bypass_rules(world: World) -> None:
    trigger = add_trigger(
        world, connect(world), path_includes=["src/*", "wrangler.toml"], path_excludes=["*.md"]
    )
    docs = github_commit("Docs", modified=("README.md", "src/NOTES.md"))
    code = github_commit("Code", added=("src/new.ts",), removed=("old.js",))
    cases = [
        ([docs], False, "path_excludes", None),
        ([github_commit("Other", modified=("test/a.ts",))], False, "path_includes", None),
        ([docs, code], True, "path_includes", "src/*"),
        ([github_commit("Empty", modified=())], True, "bypass_no_changed_files", None),
        ([github_commit("Huge", modified=tuple(f"docs/{i}.md" for i in range(3000)))], True,
         "bypass_many_files", None),
        ([github_commit(f"c{i}", modified=("README.md",)) for i in range(20)], True,
         "bypass_many_commits", None),
        ([github_commit(f"c{i}", modified=("README.md",)) for i in range(19)], False,
         "path_excludes", None),
    ]  # fmt: skip
    for commits, builds, rule, pattern in cases:
        ack = accepted(deliver_github(world, github_push("main", commits)))
        settle(world)
        [decision] = decisions(world, ack["delivery_uuid"]).values()
        assert (decision["decision"] == "built", decision["rule"]) == (builds, rule), decision
        assert decision["pattern"] == pattern
        assert decision["decision"] in ("built", "skipped") and decision["build_uuid"]
        assert decision["trigger_uuid"] == trigger["trigger_uuid"]
    # Every push left a build in the Worker's list: skipped ones stopped at once.
    listed = worker_builds(world)
    assert len(listed) == len(cases)
    skipped = [b for b in listed if b["build_outcome"] == "skipped"]
    assert len(skipped) == 3
    for build in skipped:
        assert build["status"] == "stopped" and build["stopped_on"] == build["created_on"]
        assert build["running_on"] is None
        assert build["build_trigger_metadata"]["build_trigger_source"] == "push_event"
    assert {b["status"] for b in listed if b["build_outcome"] is None} == {"queued"}


def test_gitlab_push_counts_every_pushed_commit(world: World) -> None:
    add_trigger(world, connect(world, "gitlab"), path_excludes=["*.md"])
    # GitLab lists at most 20 commits and reports the total apart. (Two commits: one commit
    # pushed twice within BUILDSD_WEBHOOK_REPLAY_WINDOW_SECONDS is a replay, D22.)
    few = gitlab_push("main", [gitlab_commit("Notes", modified=("README.md",))], total=1)
    many = gitlab_push("main", [gitlab_commit("Docs", modified=("README.md",))], total=57)
    first = accepted(deliver_gitlab(world, few))
    second = accepted(deliver_gitlab(world, many))
    settle(world)
    [few_decision] = decisions(world, first["delivery_uuid"]).values()
    [many_decision] = decisions(world, second["delivery_uuid"]).values()
    assert few_decision["rule"] == "path_excludes"
    assert many_decision["rule"] == "bypass_many_commits"
    # Each build by the build_uuid its delivery's decision names.
    builds = {build["build_uuid"]: build for build in worker_builds(world)}
    assert len(builds) == 2
    built, skipped = builds[many_decision["build_uuid"]], builds[few_decision["build_uuid"]]
    meta = built["build_trigger_metadata"]
    assert meta["author"] == "Grace Hopper" and meta["commit_message"] == "Docs\n"
    assert meta["commit_hash"] == many["checkout_sha"] and meta["branch"] == "main"
    assert skipped["build_outcome"] == "skipped"


def test_the_connection_is_found_across_accounts_and_by_provider(world: World) -> None:
    add_trigger(world, connect(world))
    other = world.new_account("second team")
    world.grant()  # two accounts: each sees the repository through its grants (D21)
    world.grant(provider_type="gitlab")
    world.grant(other)
    other_token = world.new_token("Workers CI Write", account=other)
    second = World(client=world.client, services=world.services, account=other, token=other_token)
    add_trigger(second, connect(second), tag=RELEASE)
    # A GitLab project with the same numeric id is another repository.
    add_trigger(world, connect(world, "gitlab"), tag=ANY)
    ack = accepted(deliver_github(world, github_push()))
    settle(world)
    assert len(worker_builds(world)) == 1 and len(worker_builds(second, RELEASE)) == 1
    assert worker_builds(world, ANY) == []
    # Each account sees the delivery with its own triggers' decisions only.
    mine, theirs = deliveries(world), deliveries(second)
    assert [d["delivery_uuid"] for d in mine] == [d["delivery_uuid"] for d in theirs]
    assert [x["external_script_id"] for x in theirs[0]["decisions"]] == [RELEASE]
    assert mine[0]["repository"] == "octo-org/my-worker" and mine[0]["provider"] == "github"
    assert ack["delivery_uuid"] == mine[0]["delivery_uuid"]
    # An account without the repository sees nothing.
    third = world.new_account("third")
    outsider = World(world.client, world.services, third, world.new_token(account=third))
    assert deliveries(outsider) == []


def test_deleted_triggers_and_connections_do_not_build(world: World) -> None:
    setup = connect(world)
    gone = add_trigger(world, setup, trigger_name="gone")
    add_trigger(world, setup, RELEASE, trigger_name="kept")
    ok(world.client.delete(base(world) + f"/triggers/{gone['trigger_uuid']}", headers=world.auth))
    ack = accepted(deliver_github(world, github_push()))
    settle(world)
    assert list(decisions(world, ack["delivery_uuid"])) == ["kept"]
    url = base(world) + f"/repos/connections/{setup[0]['repo_connection_uuid']}"
    ok(world.client.delete(url, headers=world.auth))
    accepted(deliver_github(world, github_push("main", [github_commit("After delete")])))
    settle(world)
    assert len(worker_builds(world, RELEASE)) == 1
    assert len(deliveries(world)) == 1  # the repository is no longer this account's


def test_a_push_build_carries_full_metadata(world: World) -> None:
    add_trigger(world, connect(world))
    commits = [github_commit("First"), github_commit("Second\n\nWith a body")]
    accepted(deliver_github(world, github_push("main", commits)))
    settle(world)
    [build] = worker_builds(world)
    meta = build["build_trigger_metadata"]
    assert meta["build_trigger_source"] == "push_event"
    assert meta["branch"] == "main" and meta["commit_hash"] == commits[-1]["id"]
    assert meta["commit_message"] == "Second\n\nWith a body"
    assert meta["author"] == "Ada Lovelace"
    assert meta["repo_name"] == "my-worker" and meta["provider_account_name"] == "octo-org"
    assert build["pull_request"] is None and build["status"] == "queued"


def test_a_pull_request_build(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["feature/*"])
    accepted(deliver_github(world, github_pull_request("opened"), "pull_request"))
    accepted(deliver_github(world, github_pull_request("opened", "other"), "pull_request"))
    settle(world)
    [build] = worker_builds(world)
    meta = build["build_trigger_metadata"]
    assert meta["build_trigger_source"] == "pull_request"
    assert meta["branch"] == "feature/login" and meta["commit_hash"] == SHA
    assert meta["commit_message"] == "Add a login page" and meta["author"] == "ada"
    assert build["pull_request"] == {
        "created_on": "2024-05-01T09:30:00.000Z",
        "pull_request_url": "https://github.com/octo-org/my-worker/pull/42",
    }


def test_gitlab_merge_requests(world: World) -> None:
    add_trigger(world, connect(world, "gitlab"), branch_includes=["*"], branch_excludes=["main"])
    for attrs in ({"action": "open"}, {"action": "reopen"}, {"action": "update", "oldrev": SHA}):
        accepted(deliver_gitlab(world, gitlab_merge_request(**attrs), "Merge Request Hook"))
    for attrs in (
        {"action": "update"},  # a new title, no new commits
        {"action": "close"},
        {"action": "merge"},
        {"action": "approved"},
        {"action": "open", "source_project_id": REPO_ID + 1},  # from a fork
    ):
        ack = accepted(
            deliver_gitlab(world, gitlab_merge_request(**attrs), "Merge Request Hook"), "ignored"
        )
        assert "no build" in ack["reason"] or "fork" in ack["reason"]
    settle(world)
    builds = worker_builds(world)
    assert len(builds) == 3
    assert builds[0]["pull_request"] == {
        "created_on": "2024-05-01T09:30:00.000Z",
        "pull_request_url": "https://gitlab.com/octo-org/my-worker/-/merge_requests/7",
        "closed_on": "2024-05-01T10:00:00.000Z",  # the close's updated_at (test_pull_requests)
    }
    assert builds[0]["build_trigger_metadata"]["author"] == "Grace Hopper"


def test_gitea_synchronized_pull_requests_build(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["*"])
    payload = github_pull_request("synchronized")
    accepted(deliver_github(world, payload, "pull_request"))
    settle(world)
    assert worker_builds(world)[0]["build_trigger_metadata"]["build_trigger_source"] == (
        "pull_request"
    )
