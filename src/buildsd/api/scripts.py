"""Handlers for Workers scripts (D24): list, service, upload, delete, settings, subdomains."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from buildsd.api.endpoint import Call, Reply
from buildsd.services.scripts import read_upload, source_of
from buildsd.wire import Page, PageNumber, result_info
from buildsd.wire_workers import (
    ScriptSettings,
    ScriptSubdomain,
    Service,
    Subdomain,
    UploadedScript,
    WorkerSettings,
)


class ScriptsQuery(Struct):
    """Cloudflare answers the whole list in one page; buildsd pages it (docs/compatibility.md),
    1,000 to a page unless asked, so a client that never pages sees every Worker of most
    accounts and one answer stays bounded."""

    page: PageNumber = 1
    per_page: Annotated[int, Meta(ge=1, le=1000)] = 1000
    tags: str = ""  # Cloudflare's tag filter; buildsd's Workers are listed whatever their tags


class DeleteQuery(Struct):
    force: bool = False  # nothing binds to a buildsd Worker, so nothing stops a delete


def _name(call: Call) -> str:
    return call.params["script_name"]


async def list_(call: Call) -> Reply:
    query: ScriptsQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.scripts.page(call.account_id, page)
    return Reply(items, result_info(page, len(items), total))


async def service(call: Call) -> Service:
    return await call.services.scripts.service(call.account_id, call.params["service_name"])


async def upload(call: Call) -> UploadedScript:
    parsed = read_upload(call.body, call.headers.get("content-type", ""))
    source = source_of(call.headers.get("user-agent", ""))
    return await call.services.scripts.upload(
        call.account_id, _name(call), parsed, call.caller, source
    )


async def delete(call: Call) -> None:
    await call.services.scripts.delete(call.account_id, _name(call))


async def script_settings(call: Call) -> ScriptSettings:
    return await call.services.scripts.script_settings(call.account_id, _name(call))


async def patch_script_settings(call: Call) -> ScriptSettings:
    return await call.services.scripts.patch_script_settings(
        call.account_id, _name(call), call.body
    )


async def settings(call: Call) -> WorkerSettings:
    return await call.services.scripts.settings(call.account_id, _name(call))


async def subdomain(call: Call) -> Subdomain:
    return await call.services.scripts.subdomain(call.account_id)


async def set_subdomain(call: Call) -> Subdomain:
    return await call.services.scripts.set_subdomain(call.account_id, call.body)


async def script_subdomain(call: Call) -> ScriptSubdomain:
    return await call.services.scripts.script_subdomain(call.account_id, _name(call))


async def set_script_subdomain(call: Call) -> ScriptSubdomain:
    return await call.services.scripts.set_script_subdomain(call.account_id, _name(call), call.body)
