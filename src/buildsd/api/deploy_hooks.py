"""Handlers for deploy hooks (spec §8): managed per Worker name, triggered without credentials."""

from __future__ import annotations

from buildsd.api.endpoint import Call
from buildsd.wire import DeployHook, DetailedDeployHook, TriggeredDeployHook


async def list_(call: Call) -> list[DetailedDeployHook]:
    return await call.services.deploy_hooks.list_(call.account_id, call.params["script_name"])


async def create(call: Call) -> DeployHook:
    return await call.services.deploy_hooks.create(
        call.account_id, call.params["script_name"], call.body
    )


async def get(call: Call) -> DeployHook:
    return await call.services.deploy_hooks.get(
        call.account_id, call.params["script_name"], call.params["deploy_hook_uuid"]
    )


async def update(call: Call) -> DeployHook:
    return await call.services.deploy_hooks.update(
        call.account_id, call.params["script_name"], call.params["deploy_hook_uuid"], call.body
    )


async def delete(call: Call) -> DeployHook:
    return await call.services.deploy_hooks.delete(
        call.account_id, call.params["script_name"], call.params["deploy_hook_uuid"]
    )


async def trigger(call: Call) -> TriggeredDeployHook:
    return await call.services.deploy_hooks.trigger(call.params["deploy_hook_uuid"])
