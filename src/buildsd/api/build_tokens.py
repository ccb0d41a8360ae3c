"""Handlers for build tokens (spec §4, D19)."""

from __future__ import annotations

from buildsd.api.endpoint import Call, PageQuery, Reply
from buildsd.wire import BuildToken, Page, result_info


async def list_(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.build_tokens.page(call.account_id, page)
    return Reply(items, result_info(page, len(items), total, next_page=True))


async def create(call: Call) -> BuildToken:
    return await call.services.build_tokens.create(call.account_id, call.body)


async def delete(call: Call) -> None:
    await call.services.build_tokens.delete(call.account_id, call.params["build_token_uuid"])
