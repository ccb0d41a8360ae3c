"""Handlers for token verification and accounts (conventions file §4)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from buildsd.api.endpoint import Call, Reply
from buildsd.errors import UnauthorizedResource
from buildsd.services.identity import Identity
from buildsd.wire import Account, Page, PageNumber, VerifyMessage, result_info

_VALID = VerifyMessage(code=10000, message="This API Token is valid and active")


class PageQuery(Struct):
    page: PageNumber = 1
    per_page: Annotated[int, Meta(ge=1, le=50)] = 20


async def verify_token(call: Call) -> Reply:
    assert call.caller is not None
    result = Identity.verification(call.caller)
    return Reply(result, messages=[_VALID] if result.status == "active" else [])


async def list_accounts(call: Call) -> Reply:
    assert call.caller is not None
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.identity.visible_accounts(call.caller, page)
    return Reply(items, result_info(page, len(items), total))


async def get_account(call: Call) -> Account:
    assert call.caller is not None
    account = await call.services.identity.visible_account(call.caller, call.account_id)
    if account is None:
        raise UnauthorizedResource()
    return account
