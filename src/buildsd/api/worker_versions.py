"""Handlers for a Worker's versions and deployments (D24), as wrangler calls them."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from buildsd.api.endpoint import Call, Reply
from buildsd.services.scripts import read_upload, source_of
from buildsd.wire import Page, PageNumber, result_info
from buildsd.wire_workers import Deployment, DeploymentList, Version, VersionList


class VersionsQuery(Struct):
    page: PageNumber = 1
    per_page: Annotated[int, Meta(ge=1, le=100)] = 10
    deployable: bool = False  # every buildsd version can be deployed


class DeploymentQuery(Struct):
    force: bool = False


def _name(call: Call) -> str:
    return call.params["script_name"]


async def upload(call: Call) -> Version:
    parsed = read_upload(call.body, call.headers.get("content-type", ""))
    source = source_of(call.headers.get("user-agent", ""))
    return await call.services.deployments.upload_version(
        call.account_id, _name(call), parsed, call.caller, source
    )


async def list_versions(call: Call) -> Reply:
    query: VersionsQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.deployments.versions(call.account_id, _name(call), page)
    return Reply(VersionList(items=items), result_info(page, len(items), total))


async def get_version(call: Call) -> Version:
    return await call.services.deployments.version(
        call.account_id, _name(call), call.params["version_id"]
    )


async def create_deployment(call: Call) -> Deployment:
    source = source_of(call.headers.get("user-agent", ""))
    return await call.services.deployments.create(
        call.account_id, _name(call), call.body, call.caller, source
    )


async def list_deployments(call: Call) -> DeploymentList:
    items = await call.services.deployments.list_(call.account_id, _name(call))
    return DeploymentList(deployments=items)


async def get_deployment(call: Call) -> Deployment:
    return await call.services.deployments.get(
        call.account_id, _name(call), call.params["deployment_id"]
    )
