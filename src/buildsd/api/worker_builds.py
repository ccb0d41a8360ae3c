"""Handlers for the Worker build configuration (spec §1b, §9): POST 201, GET, PATCH, DELETE."""

from __future__ import annotations

from msgspec import Struct

from buildsd.api.endpoint import Call, Reply
from buildsd.wire import WorkerBuild


class UpdateQuery(Struct):
    # Sent by real clients to also update existing previews; buildsd has no previews to update.
    patch_existing_previews: bool = False


async def create(call: Call) -> Reply:
    return Reply(await call.services.worker_builds.create(call.account_id, call.body), status=201)


async def get(call: Call) -> WorkerBuild:
    return await call.services.worker_builds.get(call.account_id, call.params["script_tag"])


async def update(call: Call) -> WorkerBuild:
    return await call.services.worker_builds.update(
        call.account_id, call.params["script_tag"], call.body
    )


async def delete(call: Call) -> str:
    return await call.services.worker_builds.delete(call.account_id, call.params["script_tag"])
