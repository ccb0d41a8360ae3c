"""Handlers for event subscriptions and their delivery ledger (extensions, docs/events.md)."""

from __future__ import annotations

from buildsd.api.endpoint import Call
from buildsd.wire import EventDelivery, EventSubscription


async def create(call: Call) -> EventSubscription:
    return await call.services.event_subscriptions.create(call.account_id, call.body)


async def list_(call: Call) -> list[EventSubscription]:
    return await call.services.event_subscriptions.list_(call.account_id)


async def get(call: Call) -> EventSubscription:
    return await call.services.event_subscriptions.get(
        call.account_id, call.params["subscription_id"]
    )


async def delete(call: Call) -> EventSubscription:
    return await call.services.event_subscriptions.delete(
        call.account_id, call.params["subscription_id"]
    )


async def deliveries(call: Call) -> list[EventDelivery]:
    return await call.services.event_subscriptions.deliveries(
        call.account_id, call.params["subscription_id"]
    )


async def replay(call: Call) -> EventDelivery:
    return await call.services.event_subscriptions.replay(
        call.account_id, call.params["subscription_id"], call.params["delivery_id"]
    )
