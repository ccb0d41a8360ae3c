"""Handlers for repository connections (spec §3.1, §3.2; list and get are extensions, D7)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from buildsd.api.endpoint import Call, Reply
from buildsd.wire import Name, Page, PageNumber, ProviderType, RepoConnection, result_info


class ListConnectionsQuery(Struct):
    page: PageNumber = 1
    per_page: Annotated[int, Meta(ge=1, le=200)] = 50
    provider_type: ProviderType | None = None
    repo_id: Name | None = None


async def upsert(call: Call) -> RepoConnection:
    return await call.services.repo_connections.upsert(call.account_id, call.body)


async def delete(call: Call) -> None:
    await call.services.repo_connections.delete(
        call.account_id, call.params["repo_connection_uuid"]
    )


async def get(call: Call) -> RepoConnection:
    return await call.services.repo_connections.get(
        call.account_id, call.params["repo_connection_uuid"]
    )


async def list_(call: Call) -> Reply:
    query: ListConnectionsQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.repo_connections.page(
        call.account_id, page, provider_type=query.provider_type, repo_id=query.repo_id
    )
    return Reply(items, result_info(page, len(items), total))
