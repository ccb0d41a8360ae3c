"""Builds as records (spec §6, D12, D13, D18): queue, read, list, cancel, logs, limits."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import msgspec

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Connection, Database, Row
from buildsd.errors import InvalidQueryParameter, InvalidRequestBody
from buildsd.logs import AccessLog
from buildsd.services import audit
from buildsd.store import builds, runs, triggers, variables
from buildsd.wire import (
    AccountLimits,
    Build,
    BuildLogs,
    BuildsMap,
    CanceledBuild,
    CreateBuildRequest,
    LogEvent,
    Page,
    PullRequest,
    Variable,
)

LOG_PAGE_LINES = 1000
MAX_IDS = 20
MAX_LINE = 2**63 - 1


def encode_cursor(seq: int) -> str:
    """Opaque, URL-safe (unpadded base64url), like Cloudflare's {"line": N} cursors."""
    raw = msgspec.json.encode({"line": seq})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        line = msgspec.json.decode(raw, type=dict[str, int])["line"]
    except (binascii.Error, ValueError, KeyError, msgspec.DecodeError) as exc:
        raise InvalidQueryParameter(
            "cursor: not a cursor this server issued", pointer="/cursor"
        ) from exc
    # A line number is a 64-bit integer in both databases; past it SQLite's driver overflowed.
    if not 0 <= line <= MAX_LINE:
        raise InvalidQueryParameter("cursor: not a cursor this server issued", pointer="/cursor")
    return line


def split_ids(raw: str, name: str) -> list[str]:
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if not ids:
        raise InvalidQueryParameter(f"{name}: give at least one id", pointer=f"/{name}")
    if len(ids) > MAX_IDS:
        raise InvalidQueryParameter(f"{name}: at most {MAX_IDS} ids", pointer=f"/{name}")
    return list(dict.fromkeys(ids))


def _elapsed_ms(row: Row, now: str) -> int | None:
    started = row["running_on"] or row["initializing_on"]
    if started is None:
        return None
    return max(0, int((clock.parse(now) - clock.parse(started)).total_seconds() * 1000))


class Builds:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        access_log: AccessLog,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._log = access_log
        self._on_queued = on_queued  # wakes this process's runner

    async def queue(
        self,
        conn: Connection,
        trigger: Row,
        *,
        source: str,
        branch: str,
        commit_hash: str = "",
        commit_message: str = "",
        author: str = "",
        pull_request: PullRequest | None = None,
        deploy_hook: Row | None = None,
        outcome: str | None = None,
    ) -> Row:
        """Record a queued build of `trigger`, its metadata captured now; inside a transaction.

        With an `outcome` the build is recorded already stopped (a push whose paths the
        trigger's filters leave out is `skipped`) and no runner is woken.
        """
        now = clock.now()
        build_uuid = clock.new_uuid()
        env = {
            row["key"]: Variable(
                value=None if row["is_secret"] else row["value"],
                is_secret=bool(row["is_secret"]),
                created_on=row["created_on"],
            )
            for row in await variables.list_for(conn, trigger["trigger_uuid"])
        }
        values: dict[str, Any] = {
            "build_uuid": build_uuid,
            "account_id": trigger["account_id"],
            "trigger_uuid": trigger["trigger_uuid"],
            "external_script_id": trigger["external_script_id"],
            "status": "queued" if outcome is None else "stopped",
            "build_outcome": outcome,
            "created_on": now,
            "modified_on": now,
            "stopped_on": None if outcome is None else now,
            "build_trigger_source": source,
            "branch": branch,
            "commit_hash": commit_hash,
            "commit_message": commit_message,
            "author": author,
            "build_command": trigger["build_command"],
            "deploy_command": trigger["deploy_command"],
            "root_directory": trigger["root_directory"],
            "build_token_uuid": trigger["build_token_uuid"],
            "build_token_name": trigger["build_token_name"],
            "repo_name": trigger["repo_name"],
            "provider_account_name": trigger["provider_account_name"],
            "provider_type": trigger["provider_type"],
            "environment_variables": env,
            "pull_request": pull_request,
            "deploy_hook_uuid": deploy_hook["deploy_hook_uuid"] if deploy_hook else None,
            "deploy_hook_name": deploy_hook["deploy_hook_name"] if deploy_hook else None,
        }
        row = await builds.insert(conn, values)
        audit.name_resource(build_uuid)  # a manual or deploy-hook build: its entry goes with it
        self._log.build_state(
            build_uuid,
            trigger["account_id"],
            values["status"],
            source=source,
            outcome=values["build_outcome"],
        )
        if outcome is None:
            # Once committed: a runner woken before would claim in another transaction (on
            # PostgreSQL, another connection) that cannot see the build yet, and sleep on.
            conn.after_commit(self._on_queued)
        return row

    async def create_manual(
        self, account_id: str, trigger_uuid: str, body: CreateBuildRequest
    ) -> Build:
        """POST …/triggers/{uuid}/builds: a branch, a commit, or both (12002 when neither)."""
        if body.branch is None and body.commit_hash is None:
            raise InvalidRequestBody("give branch, commit_hash, or both", pointer="/branch")
        async with self._db.transaction() as conn:
            trigger = await triggers.get(conn, account_id, trigger_uuid)
            row = await self.queue(
                conn,
                trigger,
                source="manual",
                branch=body.branch or "",
                commit_hash=(body.commit_hash or "").lower(),
            )
            return builds.to_wire(row, trigger)

    async def record(
        self,
        account_id: str,
        trigger_uuid: str,
        *,
        outcome: str | None,
        source: str,
        branch: str,
        commit_hash: str = "",
        commit_message: str = "",
        author: str = "",
    ) -> Build:
        """A build of the trigger queued (outcome None: a runner takes it) or already stopped
        with `outcome` (a hand-written seed's builds, services/seeding.py)."""
        async with self._db.transaction() as conn:
            trigger = await triggers.get(conn, account_id, trigger_uuid)
            row = await self.queue(
                conn,
                trigger,
                source=source,
                branch=branch,
                commit_hash=commit_hash.lower(),
                commit_message=commit_message,
                author=author,
                outcome=outcome,
            )
            return builds.to_wire(row, trigger)

    async def retry(self, account_id: str, build_uuid: str) -> Build:
        """Extension: build the same branch and commit again with the trigger's current settings
        (Cloudflare's dashboard "Retry build"; the forge's check-run re-run).

        Cloudflare's internal source `retry` is served as the public `manual` (spec newer §1.2).
        A build whose trigger was deleted cannot be retried: 404, like its trigger.
        """
        async with self._db.transaction() as conn:
            row, trigger = await self.retry_in(conn, account_id, build_uuid)
            return builds.to_wire(row, trigger)

    async def retry_in(self, conn: Connection, account_id: str, build_uuid: str) -> tuple[Row, Row]:
        """The retry inside the caller's transaction (a check run's re-run request is matched
        in the delivery's): the new build's row and its trigger's."""
        old = await builds.get(conn, account_id, build_uuid)
        trigger = await triggers.get(conn, account_id, old["trigger_uuid"])
        pull_request = builds.to_wire(old, trigger).pull_request
        row = await self.queue(
            conn,
            trigger,
            source="manual",
            branch=old["branch"],
            commit_hash=old["commit_hash"],
            commit_message=old["commit_message"],
            author=old["author"],
            pull_request=pull_request,
        )
        return row, trigger

    async def get(self, account_id: str, build_uuid: str) -> Build:
        async with self._db.connection() as conn:
            row = await builds.get(conn, account_id, build_uuid)
            return builds.to_wire(row, await triggers.get_any(conn, row["trigger_uuid"]))

    async def page_by_worker(
        self, account_id: str, tag: str, page: Page
    ) -> tuple[msgspec.Raw, int, int]:
        """The page as a JSON array (see store.builds.json_select), its size, the total."""
        async with self._db.connection() as conn:
            return await builds.page_by_worker(conn, account_id, tag, page)

    async def latest(self, account_id: str, raw_ids: str) -> BuildsMap:
        found: dict[str, Build] = {}
        async with self._db.connection() as conn:
            for tag in split_ids(raw_ids, "external_script_ids"):
                row = await builds.latest_by_worker(conn, account_id, tag)
                if row is not None:
                    found[tag] = (await builds.with_triggers(conn, [row]))[0]
        return BuildsMap(builds=found)

    async def by_versions(self, account_id: str, raw_ids: str) -> BuildsMap:
        found: dict[str, Build] = {}
        async with self._db.connection() as conn:
            for version_id in split_ids(raw_ids, "version_ids"):
                row = await builds.by_version(conn, account_id, version_id.lower())
                if row is not None:
                    found[version_id] = (await builds.with_triggers(conn, [row]))[0]
        return BuildsMap(builds=found)

    async def cancel(self, account_id: str, build_uuid: str) -> CanceledBuild:
        """Queued or running → stopped/cancelled; already stopped → as it is (D13)."""
        async with self._db.transaction() as conn:
            row = await builds.get(conn, account_id, build_uuid)
            if row["status"] != "stopped":
                now = clock.now()
                await builds.stop(
                    conn,
                    build_uuid,
                    outcome="cancelled",
                    now=now,
                    duration_ms=_elapsed_ms(row, now),
                )
                self._log.build_state(build_uuid, account_id, "stopped", outcome="cancelled")
                row = await builds.get(conn, account_id, build_uuid)
        return CanceledBuild(
            build_uuid=row["build_uuid"],
            build_outcome=row["build_outcome"],
            stopped_on=row["stopped_on"],
        )

    async def logs(self, account_id: str, build_uuid: str, cursor: str | None) -> BuildLogs:
        """A page of lines after `cursor`; the cursor is always present (D18)."""
        after = decode_cursor(cursor) if cursor else 0
        async with self._db.connection() as conn:
            await builds.get(conn, account_id, build_uuid)
            rows = await builds.log_lines(conn, build_uuid, after, LOG_PAGE_LINES + 1)
            phases = await runs.events(conn, build_uuid)
        truncated = len(rows) > LOG_PAGE_LINES
        rows = rows[:LOG_PAGE_LINES]
        last = rows[-1]["seq"] if rows else after
        return BuildLogs(
            cursor=encode_cursor(int(last)),
            truncated=truncated,
            lines=[(int(row["ts"]), row["line"]) for row in rows],
            events=[
                LogEvent(type=row["type"], started_on=row["started_on"], ended_on=row["ended_on"])
                for row in phases
            ],
        )

    async def tail_rows(
        self, account_id: str, build_uuid: str, after: int
    ) -> tuple[list[tuple[int, int, str]], str]:
        """Lines after line `after` as (line number, epoch_ms, text), and the status read first."""
        async with self._db.connection() as conn:
            status = (await builds.get(conn, account_id, build_uuid))["status"]
            rows = await builds.log_lines(conn, build_uuid, after, LOG_PAGE_LINES)
        return [(int(r["seq"]), int(r["ts"]), r["line"]) for r in rows], str(status)

    async def account_limits(self, account_id: str) -> AccountLimits:
        """Minutes used this calendar month (UTC) against BUILDSD_BUILD_MINUTES_LIMIT."""
        now = clock.utc_now()
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = month.replace(year=month.year + (month.month == 12), month=month.month % 12 + 1)
        limit = self._settings.build_minutes_limit
        reached = False
        if limit > 0:
            async with self._db.connection() as conn:
                used = await builds.minutes_used_since(conn, account_id, clock.to_wire(month))
            reached = used >= limit
        return AccountLimits(
            has_reached_build_minutes_limit=reached,
            build_minutes_refresh_on=clock.to_wire(following),
        )
