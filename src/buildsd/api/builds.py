"""Handlers for builds, their logs, and the account's limits (spec §6, §7)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct
from starlette.responses import StreamingResponse

from buildsd.api.endpoint import Call, PageQuery, Reply
from buildsd.wire import (
    SINGLE_LINE,
    AccountLimits,
    Build,
    BuildLogs,
    BuildsMap,
    CanceledBuild,
    ForgeUpdate,
    Page,
    result_info,
)

# Comma-separated ids; no id holds a control character (and PostgreSQL refuses NUL in text).
IdList = Annotated[str, Meta(pattern=SINGLE_LINE)]


class VersionsQuery(Struct):
    version_ids: IdList


class LatestQuery(Struct):
    external_script_ids: IdList


class LogsQuery(Struct):
    cursor: str | None = None


async def create_manual(call: Call) -> Build:
    # Through Previews: a non-production branch of a Worker on Previews builds its Preview.
    return await call.services.previews.create_manual(
        call.account_id, call.params["trigger_uuid"], call.body
    )


async def retry(call: Call) -> Build:
    return await call.services.builds.retry(call.account_id, call.params["build_uuid"])


async def get(call: Call) -> Build:
    return await call.services.builds.get(call.account_id, call.params["build_uuid"])


async def list_by_worker(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, count, total = await call.services.builds.page_by_worker(
        call.account_id, call.params["external_script_id"], page
    )
    return Reply(items, result_info(page, count, total, next_page=True))


async def by_versions(call: Call) -> BuildsMap:
    return await call.services.builds.by_versions(call.account_id, call.query.version_ids)


async def latest(call: Call) -> BuildsMap:
    return await call.services.builds.latest(call.account_id, call.query.external_script_ids)


async def cancel(call: Call) -> CanceledBuild:
    return await call.services.builds.cancel(call.account_id, call.params["build_uuid"])


async def forge_updates(call: Call) -> list[ForgeUpdate]:
    return await call.services.outbox.updates(call.account_id, call.params["build_uuid"])


async def logs(call: Call) -> BuildLogs:
    return await call.services.builds.logs(
        call.account_id, call.params["build_uuid"], call.query.cursor
    )


async def stream_logs(call: Call) -> StreamingResponse:
    """Extension: the log lines as Server-Sent Events while the build runs (log_stream.py)."""
    cursor = call.headers.get("last-event-id") or call.query.cursor
    events = await call.services.log_streams.open(
        call.account_id, call.params["build_uuid"], cursor
    )
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


async def account_limits(call: Call) -> AccountLimits:
    return await call.services.builds.account_limits(call.account_id)
