"""Handlers for who a credential is (GET /user, GET /memberships): what `wrangler whoami` asks."""

from __future__ import annotations

from buildsd.api.endpoint import Call, Reply
from buildsd.api.identity import PageQuery
from buildsd.errors import UnauthorizedResource
from buildsd.wire import Page, result_info
from buildsd.wire_workers import User


async def get_user(call: Call) -> User:
    assert call.caller is not None
    user = await call.services.identity.user(call.caller)
    if user is None:  # an account token belongs to no user (wrangler then says so and goes on)
        raise UnauthorizedResource()
    return user


async def memberships(call: Call) -> Reply:
    assert call.caller is not None
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.identity.memberships(call.caller, page)
    return Reply(items, result_info(page, len(items), total))
