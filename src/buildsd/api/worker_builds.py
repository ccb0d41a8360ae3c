"""Handlers for the Worker build configuration (spec §1b, §9): POST 201, GET, PATCH, DELETE."""

from __future__ import annotations

from msgspec import Struct

from buildsd.api.endpoint import Call, Reply
from buildsd.wire import WorkerBuild


class UpdateQuery(Struct):
    # Also apply previews_base_config changes to the Worker's existing Previews.
    patch_existing_previews: bool = False


async def create(call: Call) -> Reply:
    return Reply(await call.services.worker_builds.create(call.account_id, call.body), status=201)


async def get(call: Call) -> WorkerBuild:
    return await call.services.worker_builds.get(call.account_id, call.params["script_tag"])


async def update(call: Call) -> WorkerBuild:
    query: UpdateQuery = call.query
    return await call.services.worker_builds.update(
        call.account_id, call.params["script_tag"], call.body, query.patch_existing_previews
    )


async def delete(call: Call) -> str:
    return await call.services.worker_builds.delete(call.account_id, call.params["script_tag"])
