"""A closed pull request sets closed_on on the builds it started, and on no other build."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildsd import clock, migrations
from tests.api.flows import base, build_token, connection, ok
from tests.conftest import World
from tests.contract import spec
from tests.webhooks.conftest import (
    accepted,
    add_trigger,
    connect,
    decisions,
    deliver_github,
    deliver_gitlab,
    settle,
    worker_builds,
)
from tests.webhooks.payloads import REPO_ID, github_pull_request, gitlab_merge_request, sha_of

PREVIEW = "e5" * 16
OTHER_REPO = "ab" * 16
PR_42 = "https://github.com/octo-org/my-worker/pull/42"


# Migration 0008 replaced six build indexes by six partial ones: the old names back (any
# columns will do, 0008 drops them by name).
BEFORE_0014 = (
    "DROP INDEX ix_builds_account_id_external_script_id_created_on_seq; "
    "CREATE INDEX ix_builds_account_id_external_script_id_created_on_build_uuid "
    "ON builds (account_id, external_script_id, created_on, build_uuid); "
    "ALTER TABLE builds DROP COLUMN seq; "
)
BEFORE_0018 = (
    "DROP INDEX ix_audit_logs_account_id_when_seq_id; "
    "DROP INDEX ix_audit_logs_account_id_action_type_when_seq_id; "
    "DROP INDEX ix_webhook_matches_account_id_received_on_seq; "
    'CREATE INDEX ix_audit_logs_account_id_when_id ON audit_logs (account_id, "when", id); '
    "CREATE INDEX ix_audit_logs_account_id_action_type_when_id "
    'ON audit_logs (account_id, action_type, "when", id); '
    "CREATE INDEX ix_webhook_matches_account_id_received_on_delivery_uuid "
    "ON webhook_matches (account_id, received_on, delivery_uuid); "
    "ALTER TABLE audit_logs DROP COLUMN seq; ALTER TABLE webhook_matches DROP COLUMN seq; "
    "ALTER TABLE webhook_deliveries DROP COLUMN seq; "
)
BEFORE_0012 = (
    "DROP TABLE grants; DROP TABLE webhook_secrets; DROP INDEX ix_webhook_deliveries_replay; "
    "DROP INDEX uq_webhook_deliveries_key; "
    "ALTER TABLE webhook_deliveries DROP COLUMN secret_account_id; "
    "ALTER TABLE webhook_deliveries DROP COLUMN provider_account_id; "
    "ALTER TABLE webhook_deliveries DROP COLUMN action; "
    "CREATE UNIQUE INDEX uq_webhook_deliveries_key ON webhook_deliveries (provider, delivery_id) "
    "WHERE status <> 'duplicate';"
)
BEFORE_0008 = "".join(
    f"DROP INDEX ix_builds_{new}; CREATE INDEX ix_builds_{old} ON builds (account_id);"
    for new, old in zip(
        ("queued", "running", "unfinished", "version_id", "stopped_on", "deploy_hook"),
        (
            "account_id_status",
            "trigger_uuid_status",
            "account_id_version_id",
            "account_id_stopped_on",
            "status_created_on",
            "status_lease_expires_on",
        ),
        strict=True,
    )
)


def pull_request(action: str, number: int = 42, **kw: Any) -> dict[str, Any]:
    branch = "feature/login" if number == 42 else f"feature/{number}"
    return github_pull_request(action, branch, kw.pop("sha", sha_of(f"{number}")), number=number)


def closed(number: int = 42, closed_at: str | None = "2024-05-02T10:00:00Z") -> dict[str, Any]:
    payload = pull_request("closed", number)
    payload["pull_request"]["closed_at"] = closed_at
    payload["pull_request"]["merged_at"] = closed_at
    return payload


def by_pr(builds: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The builds' pull_request objects, by pull request url ("" for push builds)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for build in builds:
        pr = build["pull_request"] or {}
        found.setdefault(pr.get("pull_request_url", ""), []).append(pr)
    return found


def get_build(world: World, build_uuid: str) -> dict[str, Any]:
    return dict(ok(world.client.get(base(world) + f"/builds/{build_uuid}", headers=world.auth)))


def test_a_closed_pull_request_marks_its_builds_and_no_other(world: World) -> None:
    setup = connect(world)
    add_trigger(world, setup, trigger_name="production", branch_includes=["*"])
    add_trigger(world, setup, PREVIEW, trigger_name="previews", branch_includes=["feature/*"])
    # The same url through another connection (another repository) is not this pull request.
    elsewhere = (connection(world, repo_id=str(REPO_ID + 1)), build_token(world, "other"))
    add_trigger(world, elsewhere, OTHER_REPO, trigger_name="elsewhere", branch_includes=["*"])
    accepted(deliver_github(world, pull_request("opened"), "pull_request"))
    accepted(deliver_github(world, pull_request("synchronize", sha="a" * 40), "pull_request"))
    accepted(deliver_github(world, pull_request("opened", 43), "pull_request"))
    foreign = pull_request("opened")
    foreign["repository"]["id"] = REPO_ID + 1  # head.repo is the same object: not a fork
    accepted(deliver_github(world, foreign, "pull_request"))
    settle(world)
    before = {b["build_uuid"]: b for b in worker_builds(world) + worker_builds(world, PREVIEW)}

    ack = accepted(deliver_github(world, closed(), "pull_request"), "ignored")
    assert ack["reason"] == "pull request closed: no build; its builds get closed_on"
    settle(world)

    for tag in (None, PREVIEW):
        builds = worker_builds(world, tag) if tag else worker_builds(world)
        prs = by_pr(builds)
        assert [pr["closed_on"] for pr in prs[PR_42]] == ["2024-05-02T10:00:00.000Z"] * 2
        assert ["closed_on" not in pr for pr in prs[PR_42.replace("42", "43")]] == [True]
        for build in builds:
            # Still queued: Cloudflare documents no cancelling of a closed pull request's builds.
            assert build["status"] == "queued" and build["build_outcome"] is None
            spec.check_result("getBuildByUuid", get_build(world, build["build_uuid"]))
            if "closed_on" in build["pull_request"]:
                assert build["modified_on"] >= before[build["build_uuid"]]["modified_on"]
    [unrelated] = worker_builds(world, OTHER_REPO)
    assert unrelated["pull_request"]["pull_request_url"] == PR_42
    assert "closed_on" not in unrelated["pull_request"]

    found = decisions(world, ack["delivery_uuid"])
    assert list(found) == ["production", "previews"]  # the repository's triggers
    for decision in found.values():
        assert decision["decision"] == "closed" and decision["rule"] == "pull_request_closed"
        assert decision["reason"] == "pull request closed: 2 builds marked closed"
        assert decision["build_uuid"] is None and decision["pattern"] is None


def test_a_reopened_and_closed_again_pull_request_keeps_the_first_closed_on(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["*"])
    accepted(deliver_github(world, pull_request("opened"), "pull_request"))
    accepted(deliver_github(world, closed(), "pull_request"), "ignored")
    # A second close under a new id (a second webhook, say) marks nothing more.
    again = deliver_github(world, closed(closed_at="2024-05-03T00:00:00Z"), "pull_request")
    accepted(deliver_github(world, pull_request("reopened", sha="b" * 40), "pull_request"))
    settle(world)
    assert decisions(world, accepted(again, "ignored")["delivery_uuid"])["Deploy main"][
        "reason"
    ] == ("pull request closed: 0 builds marked closed")
    final = deliver_github(world, closed(closed_at="2024-05-04T08:00:00Z"), "pull_request")
    settle(world)
    newest, oldest = worker_builds(world)
    assert oldest["pull_request"]["closed_on"] == "2024-05-02T10:00:00.000Z"
    assert newest["pull_request"]["closed_on"] == "2024-05-04T08:00:00.000Z"
    assert decisions(world, accepted(final, "ignored")["delivery_uuid"])["Deploy main"][
        "reason"
    ] == ("pull request closed: 1 build marked closed")


def test_without_closed_at_the_time_received_is_closed_on(world: World) -> None:
    add_trigger(world, connect(world), branch_includes=["*"])
    accepted(deliver_github(world, pull_request("opened"), "pull_request"))
    settle(world)
    start = clock.now()
    accepted(deliver_github(world, closed(closed_at=None), "pull_request"), "ignored")
    end = clock.now()
    settle(world)
    [build] = worker_builds(world)
    assert start <= build["pull_request"]["closed_on"] <= end
    assert spec.DATE_TIME.match(build["pull_request"]["closed_on"])


def test_gitlab_merge_requests_closed_or_merged(world: World) -> None:
    add_trigger(world, connect(world, "gitlab"), branch_includes=["*"])
    accepted(deliver_gitlab(world, gitlab_merge_request("open"), "Merge Request Hook"))
    other = gitlab_merge_request("open", "feature/other", "c" * 40)
    other["object_attributes"]["url"] = other["object_attributes"]["url"].replace("/7", "/8")
    accepted(deliver_gitlab(world, other, "Merge Request Hook"))
    settle(world)
    merged = gitlab_merge_request("merge")
    merged["object_attributes"]["updated_at"] = "2024-05-02 12:30:00 UTC"
    ack = accepted(deliver_gitlab(world, merged, "Merge Request Hook"), "ignored")
    settle(world)
    builds = {b["build_trigger_metadata"]["branch"]: b for b in worker_builds(world)}
    assert builds["feature/login"]["pull_request"]["closed_on"] == "2024-05-02T12:30:00.000Z"
    assert "closed_on" not in builds["feature/other"]["pull_request"]
    assert decisions(world, ack["delivery_uuid"])["Deploy main"]["decision"] == "closed"
    shut = gitlab_merge_request("close", "feature/other", "c" * 40)
    shut["object_attributes"]["url"] = other["object_attributes"]["url"]
    del shut["object_attributes"]["updated_at"]  # falls back to the time received
    accepted(deliver_gitlab(world, shut, "Merge Request Hook"), "ignored")
    settle(world)
    builds = {b["build_trigger_metadata"]["branch"]: b for b in worker_builds(world)}
    assert builds["feature/other"]["pull_request"]["closed_on"] >= "2025-01-01"


def test_builds_made_before_the_upgrade_are_marked_too(
    hooks: Callable[..., World], tmp_path: Path
) -> None:
    """Migration 0007 remembers the pull-request builds that existed without closed_on."""
    path = tmp_path / "upgraded.sqlite3"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    world = hooks(database_url=url)
    add_trigger(world, connect(world), branch_includes=["*"])
    accepted(deliver_github(world, pull_request("opened", 41), "pull_request"))
    accepted(deliver_github(world, closed(41), "pull_request"), "ignored")
    accepted(deliver_github(world, pull_request("opened"), "pull_request"))
    settle(world)
    with sqlite3.connect(path) as raw:  # back to 0006: what 0007 to 0018 made gone
        raw.executescript(
            BEFORE_0018 + "DROP TABLE previews; DROP TABLE previews_configs; "
            "DROP INDEX ix_builds_trigger_uuid_created_on_seq;"
            + BEFORE_0014
            + BEFORE_0012
            + "DROP TABLE pull_request_builds; DROP INDEX ix_webhook_deliveries_processed_on; "
            "DROP INDEX ix_webhook_matches_delivery_uuid; "
            + BEFORE_0008
            + "ALTER TABLE builds DROP COLUMN build_json;"
            + "DROP TRIGGER repo_connections_count_insert;"
            + "DROP TRIGGER repo_connections_count_update;"
            + "DROP TABLE account_connection_counts; DROP TABLE rate_limit_buckets;"
            + "DROP TRIGGER workers_count_insert; DROP TRIGGER workers_count_delete;"
            + "DROP TABLE account_worker_counts;"
            + "DROP TABLE worker_version_parts; DROP TABLE worker_deployments;"
            + "DROP TABLE worker_versions; DROP TABLE workers_subdomains;"
            + "DROP INDEX ix_workers_account_id_created_on_tag;"
            + "".join(
                f"ALTER TABLE workers DROP COLUMN {column};"
                for column in (
                    "modified_on",
                    "etag",
                    "script",
                    "deployment_id",
                    "subdomain_enabled",
                    "previews_enabled",
                )
            )
            + "DROP TABLE outbox; DROP TABLE forge_credentials; DROP TABLE event_subscriptions;"
            + "UPDATE alembic_version SET version_num = '0006';"
        )
    migrations.upgrade(url)
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT build_uuid FROM pull_request_builds").fetchall()
    open_build = next(b for b in worker_builds(world) if "closed_on" not in b["pull_request"])
    assert rows == [(open_build["build_uuid"],)]
    accepted(deliver_github(world, closed(), "pull_request"), "ignored")
    settle(world)
    assert all("closed_on" in b["pull_request"] for b in worker_builds(world))
