"""Handlers for triggers and their build variables (spec §5, D17, D14)."""

from __future__ import annotations

from typing import Any

from buildsd.api.endpoint import Call, PageQuery, Reply, convert_body, decode_body
from buildsd.wire import (
    Page,
    Trigger,
    Variable,
    VariableInput,
    VariablesList,
    VariablesMap,
    result_info,
)


def decode_variables(raw: bytes) -> dict[str, VariableInput | None]:
    """The map form {KEY: {value, is_secret} | null} or the guide's {"variables": [...]}."""
    data = decode_body(raw, dict[str, Any])
    if set(data) == {"variables"} and isinstance(data["variables"], list):
        listed: VariablesList = convert_body(data, VariablesList)
        return {
            item.key: VariableInput(value=item.value, is_secret=item.type == "secret")
            for item in listed.variables
        }
    changes: dict[str, VariableInput | None] = convert_body(data, VariablesMap)
    return changes


async def create(call: Call) -> Trigger:
    return await call.services.triggers.create(call.account_id, call.body)


async def update(call: Call) -> Trigger:
    return await call.services.triggers.update(
        call.account_id, call.params["trigger_uuid"], call.body
    )


async def delete(call: Call) -> None:
    await call.services.triggers.delete(call.account_id, call.params["trigger_uuid"])


async def get(call: Call) -> Trigger:
    return await call.services.triggers.get(call.account_id, call.params["trigger_uuid"])


async def list_(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.triggers.page(call.account_id, page)
    return Reply(items, result_info(page, len(items), total))


async def list_by_worker(call: Call) -> list[Trigger]:
    return await call.services.triggers.list_by_worker(
        call.account_id, call.params["external_script_id"]
    )


async def purge_build_cache(call: Call) -> None:
    await call.services.triggers.purge_build_cache(call.account_id, call.params["trigger_uuid"])


async def list_variables(call: Call) -> dict[str, Variable]:
    return await call.services.triggers.variables(call.account_id, call.params["trigger_uuid"])


async def set_variables(call: Call) -> dict[str, Variable]:
    return await call.services.triggers.set_variables(
        call.account_id, call.params["trigger_uuid"], call.body
    )


async def delete_variable(call: Call) -> None:
    await call.services.triggers.delete_variable(
        call.account_id, call.params["trigger_uuid"], call.params["environment_variable_key"]
    )
