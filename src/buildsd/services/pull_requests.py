"""Closed pull requests: `closed_on` on the builds they started (docs/webhooks.md).

A pull-request build is remembered by its connection and pull request (the sha256 of its
url) when it is queued; a delivery saying the pull request was closed finds those builds
through that, sets `closed_on` on each that has none, and forgets them. Queued builds of a
closed pull request are left to run: Cloudflare documents no cancelling of them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import msgspec

from buildsd import clock
from buildsd.db import Connection, Row
from buildsd.store import pull_requests
from buildsd.wire import PullRequest, WebhookDecision

RULE = "pull_request_closed"
_pull_request = msgspec.json.Decoder(PullRequest)


def key_of(url: str) -> str:
    """Stored in place of the url, which may be longer than an index entry (migration 0007)."""
    return hashlib.sha256(url.encode()).hexdigest()


def closing(pull_request: PullRequest | None) -> PullRequest | None:
    """The event's pull request when the event closes it (closed_on set), else None."""
    if pull_request is None or pull_request.closed_on is msgspec.UNSET:
        return None
    return pull_request


async def remember(
    conn: Connection, trigger: Row, build_uuid: str, pull_request: PullRequest | None
) -> None:
    """A build just queued for a pull request, found again when the pull request closes."""
    if pull_request is not None and pull_request.pull_request_url:
        key = key_of(pull_request.pull_request_url)
        await pull_requests.remember(conn, trigger["repo_connection_uuid"], key, build_uuid)


async def close(
    conn: Connection, listeners: Iterable[Row], closed: PullRequest, received_on: str
) -> Counter[str]:
    """Set closed_on (the event's, else when it was received) on every build of the pull
    request made through the listeners' connections that has none yet; how many builds each
    trigger had marked."""
    marked: Counter[str] = Counter()
    if not closed.pull_request_url:
        return marked  # nothing ties the delivery to builds
    key, now = key_of(closed.pull_request_url), clock.now()
    closed_on = closed.closed_on or received_on
    for connection in sorted({row["repo_connection_uuid"] for row in listeners}):
        for row in await pull_requests.open_builds(conn, connection, key):
            before = row["pull_request"]
            current = _pull_request.decode(before)
            if current.closed_on is msgspec.UNSET:
                after = msgspec.structs.replace(current, closed_on=closed_on)
                text = msgspec.json.encode(after).decode()
                if await pull_requests.set_pull_request(conn, row["build_uuid"], before, text, now):
                    marked[row["trigger_uuid"]] += 1
            await pull_requests.forget(conn, connection, key, row["build_uuid"])
    return marked


def decision(trigger: Row, marked: Counter[str]) -> WebhookDecision:
    """What a closed pull request did to one trigger's builds."""
    count = marked[trigger["trigger_uuid"]]
    return WebhookDecision(
        trigger_uuid=trigger["trigger_uuid"],
        trigger_name=trigger["trigger_name"],
        external_script_id=trigger["external_script_id"],
        decision="closed",
        rule=RULE,
        pattern=None,
        reason=f"pull request closed: {count} build{'' if count == 1 else 's'} marked closed",
        build_uuid=None,
    )
