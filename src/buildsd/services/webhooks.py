"""Push webhooks: verify, store and answer at once; match the stored delivery to triggers after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import msgspec

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Connection, Database, Row
from buildsd.errors import DeliveryNotReplayable, InvalidWebhookPayload
from buildsd.services import pull_requests, reruns, webhook_events
from buildsd.services.builds import Builds
from buildsd.services.grants import Grants
from buildsd.services.patterns import Verdict, verdict
from buildsd.services.previews import Previews
from buildsd.services.webhook_events import PROVIDER_TYPES, Event, Provider
from buildsd.services.webhook_retention import Retention
from buildsd.services.webhook_secrets import WebhookSecrets
from buildsd.store import builds, runs, triggers, webhook_deliveries
from buildsd.wire import (
    ExplainRequest,
    Explanation,
    Page,
    WebhookAck,
    WebhookDecision,
    WebhookDelivery,
)

log = logging.getLogger("buildsd.webhooks")

# How often the matcher looks for deliveries stored but never matched (a process that died
# between answering and matching, or another replica); a new delivery wakes it at once.
POLL_SECONDS = 2.0
# Providers time the answer, not the build: while deliveries keep arriving, matching waits for
# a pause of QUIET_SECONDS (at most MAX_DEFER_SECONDS), so a burst is answered first.
QUIET_SECONDS = 0.01
MAX_DEFER_SECONDS = 0.25
BATCH = 100
MAX_ATTEMPTS = 5  # a delivery whose matching keeps failing is given up (and logged)
WEBHOOK_SOURCES = ("push_event", "pull_request")


def _decision(found: Verdict) -> Literal["built", "skipped", "not_matched"]:
    """A branch the trigger does not build is not its business: no record. Paths it leaves
    out make a `skipped` build, so clients listing the Worker's builds see the push."""
    if found.builds:
        return "built"
    return "not_matched" if found.rule.startswith("branch_") else "skipped"


def _verdict(trigger: Row, branch: str, changed: tuple[str, ...], commit_count: int) -> Verdict:
    lists = {name: msgspec.json.decode(trigger[name], type=list[str]) for name in triggers.LISTS}
    return verdict(branch, changed, commit_count, **lists)


def _text(raw: bytes) -> str:
    """The body as stored: msgspec accepted it, so it is UTF-8 JSON (NUL only as \\u0000)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise InvalidWebhookPayload("the body is not UTF-8") from exc
    if "\x00" in text:
        raise InvalidWebhookPayload("the body holds a NUL byte")
    return text


class Webhooks:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        builds: Builds,
        grants: Grants,
        secrets: WebhookSecrets,
        previews: Previews | None = None,
    ) -> None:
        self._db = db
        self._previews = previews  # Worker Previews: made by a push, deleted with a branch
        self._settings = settings
        self._builds = builds
        self._grants = grants
        self._secrets = secrets
        self._wake = asyncio.Event()
        self._received = 0  # deliveries stored by this process, to notice a burst
        self._since = ("", "")  # the replay window's start: (received second, its start's)
        self.retention = Retention(db, settings)  # the matcher prunes old deliveries too

    # --- intake: nothing here may be slow; GitHub gives up after 10 s -----------------------

    async def receive(
        self,
        provider: Provider,
        headers: Mapping[str, str],
        raw: bytes,
        account_id: str | None = None,
    ) -> WebhookAck:
        """Verify (before parsing anything), parse, store in one transaction, answer.

        `headers` has lower-case names. With `account_id` (/webhooks/{provider}/{account_id})
        the account's own secret verifies it and only its connections will see it (D22); else
        the global secret. A known delivery id, or a replay of an accepted delivery's
        repository, branch, commit and event within BUILDSD_WEBHOOK_REPLAY_WINDOW_SECONDS,
        stores a `duplicate` row and starts nothing; matching happens after the answer, from
        what was stored.
        """
        await self._secrets.verify(provider, account_id, headers, raw)
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise InvalidWebhookPayload(
                "the webhook sends application/x-www-form-urlencoded: "
                "set its content type to application/json"
            )
        name = webhook_events.event_name(provider, headers)
        event = webhook_events.parse(provider, name, raw)
        closes = pull_requests.closing(event.pull_request)
        values: dict[str, Any] = {
            "delivery_uuid": clock.new_uuid(),
            "seq": clock.next_seq(),  # the order of deliveries of one millisecond
            "provider": provider,
            "delivery_id": webhook_events.delivery_id(provider, headers, raw),
            "event": name,
            "status": event.status,
            "reason": event.reason,
            "repo_id": event.repo_id,
            "repository": event.repository,
            "branch": event.branch,
            "commit_hash": event.commit_hash,
            # Only an accepted delivery, a closed pull request or a deleted branch is matched
            # from its body.
            "payload": _text(raw)
            if event.status == "accepted" or closes or event.deleted
            else None,
            "received_on": clock.now(),
            # Nothing to match without a repository; the rest waits for the matcher.
            "processed_on": None if event.repo_id else clock.now(),
            "attempts": 0,
            "secret_account_id": account_id or "",
            "provider_account_id": event.provider_account_id,
            "action": event.action,
        }
        async with self._db.transaction() as conn:
            if not await webhook_deliveries.insert(conn, values):
                first = await webhook_deliveries.original(conn, values)
                first_uuid = first["delivery_uuid"] if first else "?"
                values.update(
                    status="duplicate",
                    reason=f"redelivery of {first_uuid}: started nothing",
                    payload=None,
                )
                await webhook_deliveries.insert(conn, values)
            elif (
                event.status == "accepted"
                and not event.rerun  # each "Re-run" click is meant; a redelivery's id is known
                and (replayed := await self._replayed(conn, values))
            ):
                values.update(
                    status="duplicate",
                    reason=f"replay of {replayed} (same repository, branch, commit and event "
                    f"within {self._settings.webhook_replay_window_seconds} s): started nothing",
                    payload=None,
                )
                await webhook_deliveries.mark_duplicate(
                    conn, values["delivery_uuid"], values["reason"]
                )
        self._received += 1
        self._wake.set()
        return WebhookAck(
            delivery_uuid=values["delivery_uuid"],
            delivery_id=values["delivery_id"],
            status=values["status"],
            reason=values["reason"],
        )

    async def _replayed(self, conn: Connection, values: dict[str, Any]) -> str | None:
        """The accepted delivery, within the window, this one repeats under a new id (D22):
        same repository, branch, head commit and event (and pull-request action)."""
        window = self._settings.webhook_replay_window_seconds
        if window == 0:
            return None
        # The window is whole seconds: only the second's prefix changes, formatted once a
        # second (formatting it each time would also undo clock's own cache of now's prefix).
        received, millis = values["received_on"][:20], values["received_on"][20:]
        if self._since[0] != received:
            earlier = clock.parse(values["received_on"]) - timedelta(seconds=window)
            self._since = (received, clock.to_wire(earlier)[:20])
        return await webhook_deliveries.replayed(conn, values, self._since[1] + millis)

    # --- matching ---------------------------------------------------------------------------

    def notify(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Match stored deliveries until `stopping` is set (the app's lifespan runs this).

        It starts with whatever an earlier process stored and never matched, is woken by each
        new delivery, and looks again every POLL_SECONDS for deliveries of other replicas.
        """
        while not stopping.is_set():
            try:
                await self._pause()
                while not stopping.is_set() and await self.match_pending() == BATCH:
                    pass
                await self.retention.prune_when_due()
            except Exception:  # the database may be briefly unreachable: keep matching
                log.exception("webhook matching failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()

    async def _pause(self) -> None:
        """Wait while this process is still receiving deliveries (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_DEFER_SECONDS
        while loop.time() < deadline:
            seen = self._received
            await asyncio.sleep(QUIET_SECONDS)
            if self._received == seen:
                return

    async def match_pending(self) -> int:
        """Match up to BATCH stored deliveries, oldest first; how many were matched."""
        async with self._db.connection() as conn:
            waiting = await webhook_deliveries.pending(conn, BATCH)
        matched = 0
        for delivery_uuid in waiting:
            # On SQLite a transaction never suspends: yield between deliveries so requests
            # that arrived meanwhile are answered first.
            await asyncio.sleep(0)
            try:
                if await self._match(delivery_uuid):
                    matched += 1
            except Exception:
                log.exception("matching webhook delivery %s failed", delivery_uuid)
                async with self._db.transaction() as conn:
                    await webhook_deliveries.failed(conn, delivery_uuid, clock.now(), MAX_ATTEMPTS)
        return matched

    async def _match(self, delivery_uuid: str) -> bool:
        """One delivery: claimed and its builds queued in one transaction, so exactly once."""
        async with self._db.transaction() as conn:
            row = await webhook_deliveries.claim(conn, delivery_uuid, clock.now())
            if row is None:
                return False
            await self._decide_all(conn, row, row["payload"])
        return True

    async def _decide_all(
        self, conn: Connection, row: Row, payload: str | None, account_id: str | None = None
    ) -> dict[str, list[WebhookDecision]]:
        """Every live trigger of the repository (of one account, for a replay) decides."""
        event = None
        if payload is not None:  # kept by accepted deliveries and closed pull requests
            event = webhook_events.parse(row["provider"], row["event"], payload.encode())
        found: dict[str, list[WebhookDecision]] = {}
        if not row["repo_id"]:
            return found
        types = PROVIDER_TYPES[row["provider"]]
        # An account's own secret verified it: its connections alone may see it (D22).
        only = account_id or row["secret_account_id"] or None
        items = await webhook_deliveries.listeners(conn, types, row["repo_id"], only)
        items = await self._grants.within(conn, items, row)
        if event is not None and event.rerun:  # GitHub's "Re-run" (services/reruns.py)
            found = await reruns.rerun(conn, self._builds, items, event)
            items = []
        closes = pull_requests.closing(event.pull_request) if event else None
        marked = None
        if closes is not None:
            marked = await pull_requests.close(conn, items, closes, row["received_on"])
        for item in items:
            decisions = found.setdefault(item["account_id"], [])
            if event is not None and not event.deleted and item["trigger_uuid"] is not None:
                trigger = await triggers.get_any(conn, item["trigger_uuid"])
                if marked is not None:  # a closed pull request: no build, closed_on set
                    decisions.append(pull_requests.decision(trigger, marked))
                else:
                    decisions.append(await self._decide(conn, trigger, event))
        if event is not None and marked is None and self._previews is not None:
            await self._previews_of(conn, items, event, found)
        for account, decisions in found.items():
            await webhook_deliveries.put_match(
                conn,
                account_id=account,
                delivery_uuid=row["delivery_uuid"],
                received_on=row["received_on"],
                seq=row["seq"],
                decisions=decisions,
            )
        return found

    async def _previews_of(
        self,
        conn: Connection,
        items: list[Row],
        event: Event,
        found: dict[str, list[WebhookDecision]],
    ) -> None:
        """A deleted branch deletes its Previews (flag on); a push of a branch that has no
        Preview yet makes one per Worker on Previews, and its trigger decides like the rest."""
        assert self._previews is not None
        connections = sorted({(item["account_id"], item["repo_connection_uuid"]) for item in items})
        for account, connection_uuid in connections:
            if event.deleted:
                await self._previews.branch_deleted(conn, connection_uuid, event.branch)
                continue
            for trigger in await self._previews.for_push(conn, connection_uuid, event.branch):
                found.setdefault(account, []).append(await self._decide(conn, trigger, event))

    async def _decide(self, conn: Connection, trigger: Row, event: Event) -> WebhookDecision:
        found = _verdict(trigger, event.branch, event.changed_files, event.commit_count)
        decision = _decision(found)
        build_uuid = None
        if decision != "not_matched":
            build = await self._builds.queue(
                conn,
                trigger,
                source=event.source,
                branch=event.branch,
                commit_hash=event.commit_hash,
                commit_message=event.commit_message,
                author=event.author,
                pull_request=event.pull_request,
                outcome=None if found.builds else "skipped",
            )
            build_uuid = str(build["build_uuid"])
            await pull_requests.remember(conn, trigger, build_uuid, event.pull_request)
            if found.builds and self._settings.cancel_superseded:
                await self._cancel_superseded(conn, trigger, event, build_uuid)
        return WebhookDecision(
            trigger_uuid=trigger["trigger_uuid"],
            trigger_name=trigger["trigger_name"],
            external_script_id=trigger["external_script_id"],
            decision=decision,
            rule=found.rule,
            pattern=found.pattern,
            reason=found.reason,
            build_uuid=build_uuid,
        )

    async def _cancel_superseded(
        self, conn: Connection, trigger: Row, event: Event, newest: str
    ) -> None:
        """BUILDSD_CANCEL_SUPERSEDED: the trigger's queued webhook builds of this branch for
        other (older) commits are cancelled; manual and deploy-hook builds are left alone."""
        now = clock.now()
        for build in await builds.unfinished_of_trigger(conn, trigger["trigger_uuid"]):
            if (
                build["status"] == "queued"
                and build["build_uuid"] != newest
                and build["branch"] == event.branch
                and build["commit_hash"] != event.commit_hash
                and build["build_trigger_source"] in WEBHOOK_SOURCES
                and await builds.stop(
                    conn, build["build_uuid"], outcome="cancelled", now=now, duration_ms=None
                )
            ):
                seq = await runs.next_log_seq(conn, build["build_uuid"])
                text = f"Cancelled: superseded by a push of {event.commit_hash} (build {newest})."
                stamp = time.time_ns() // 1_000_000
                await runs.append_lines(conn, build["build_uuid"], [(seq, stamp, text)])

    # --- the extensions (D7) ------------------------------------------------------------------

    async def page(self, account_id: str, page: Page) -> tuple[list[WebhookDelivery], int]:
        async with self._db.connection() as conn:
            rows, total = await webhook_deliveries.page(conn, account_id, page)
        return [webhook_deliveries.to_wire(row) for row in rows], total

    async def replay(self, account_id: str, delivery_uuid: str) -> WebhookDelivery:
        """Match a stored delivery again, as if new, against this account's triggers only."""
        delivery_uuid = delivery_uuid.lower()
        async with self._db.transaction() as conn:
            row = await webhook_deliveries.get(conn, account_id, delivery_uuid)
            if row["status"] != "accepted":
                raise DeliveryNotReplayable(f"this delivery is {row['status']}: {row['reason']}")
            payload = await webhook_deliveries.payload(conn, delivery_uuid)
            found = await self._decide_all(conn, row, payload, account_id)
            if account_id not in found:  # the account's connection is gone since
                await webhook_deliveries.put_match(
                    conn,
                    account_id=account_id,
                    delivery_uuid=delivery_uuid,
                    received_on=row["received_on"],
                    seq=row["seq"],
                    decisions=[],
                )
            row = await webhook_deliveries.get(conn, account_id, delivery_uuid)
        return webhook_deliveries.to_wire(row)

    async def explain(
        self, account_id: str, trigger_uuid: str, body: ExplainRequest
    ) -> Explanation:
        """What a push would do to this trigger: the same rule deliveries are matched with."""
        async with self._db.connection() as conn:
            trigger = await triggers.get(conn, account_id, trigger_uuid)
        changed = tuple(dict.fromkeys(body.changed_files))
        found = _verdict(trigger, body.branch, changed, body.commit_count)
        return Explanation(
            would_build=found.builds,
            decision=_decision(found),
            rule=found.rule,
            pattern=found.pattern,
            reason=found.reason,
        )
