"""Handlers for grants (D21; extensions): read-only, the operator adds and revokes them."""

from __future__ import annotations

from buildsd.api.endpoint import Call, PageQuery, Reply
from buildsd.wire import Grant, Page, result_info


async def list_(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.grants.page(call.account_id, page)
    return Reply(items, result_info(page, len(items), total))


async def get(call: Call) -> Grant:
    return await call.services.grants.get(call.account_id, call.params["grant_id"])
