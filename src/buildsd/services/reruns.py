"""GitHub's "Re-run" on a buildsd check run (issue 16): the build the check run's external_id
names is retried (Builds.retry's extension), or for a whole check suite each Worker's newest
build of the suite's commit, in the matcher's transaction.

Only a build of a live trigger of the delivery's own repository, in an account that may see
the delivery (its own webhook secret verified it, D22, inside its grants), is retried: another
tenant naming that build's uuid in a delivery of its own retries nothing."""

from __future__ import annotations

from buildsd.db import Connection, Row
from buildsd.services.builds import Builds
from buildsd.services.webhook_payloads import Event
from buildsd.store import builds, outbox
from buildsd.wire import WebhookDecision

RULE = "check_run_rerequested"


async def rerun(
    conn: Connection, service: Builds, items: list[Row], event: Event
) -> dict[str, list[WebhookDecision]]:
    """Each listening account's decisions: one `built` per retried build."""
    live = {(item["account_id"], item["trigger_uuid"]) for item in items if item["trigger_uuid"]}
    found: dict[str, list[WebhookDecision]] = {}
    for account in dict.fromkeys(item["account_id"] for item in items):
        decisions = found.setdefault(account, [])
        for build_uuid in await _named(conn, account, event):
            old = await builds.find(conn, account, build_uuid)  # another account's: None
            if old is None or (account, old["trigger_uuid"]) not in live:
                continue
            if old["commit_hash"] != event.commit_hash:  # not the check run's commit
                continue
            row, trigger = await service.retry_in(conn, account, build_uuid)
            decisions.append(
                WebhookDecision(
                    trigger_uuid=trigger["trigger_uuid"],
                    trigger_name=trigger["trigger_name"],
                    external_script_id=trigger["external_script_id"],
                    decision="built",
                    rule=RULE,
                    pattern=None,
                    reason=f"GitHub asked for a re-run of build {build_uuid}",
                    build_uuid=str(row["build_uuid"]),
                )
            )
    return found


async def _named(conn: Connection, account: str, event: Event) -> list[str]:
    if event.rerun == "check_run":
        return [event.rerun_build]
    newest: dict[str, str] = {}  # per Worker, its newest build with a check run of the commit
    for row in await outbox.checked_builds(conn, account, event.commit_hash):
        newest.setdefault(str(row["external_script_id"]), str(row["build_uuid"]))
    return list(newest.values())
