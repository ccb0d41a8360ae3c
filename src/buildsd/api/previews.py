"""Handlers for Worker Previews (issue 13): migrate_to_previews, the Previews and their builds."""

from __future__ import annotations

from buildsd.api.endpoint import Call, PageQuery, Reply
from buildsd.wire import Build, Page, WorkerBuild, result_info
from buildsd.wire_previews import Preview


async def migrate(call: Call) -> WorkerBuild:
    return await call.services.worker_builds.migrate_to_previews(
        call.account_id, call.params["script_tag"], call.body
    )


async def list_(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.previews.page(
        call.account_id, call.params["script_tag"], page
    )
    return Reply(items, result_info(page, len(items), total))


async def get(call: Call) -> Preview:
    return await call.services.previews.get(
        call.account_id, call.params["script_tag"], call.params["preview_id"]
    )


async def update(call: Call) -> Preview:
    return await call.services.previews.update(
        call.account_id, call.params["script_tag"], call.params["preview_id"], call.body
    )


async def list_builds(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.previews.builds_page(
        call.account_id, call.params["script_tag"], call.params["preview_id"], page
    )
    return Reply(items, result_info(page, len(items), total, next_page=True))


async def create_build(call: Call) -> Build:
    return await call.services.previews.create_build(
        call.account_id, call.params["script_tag"], call.params["preview_id"], call.body
    )
