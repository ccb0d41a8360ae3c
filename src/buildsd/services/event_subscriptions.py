"""Event subscriptions (D29): where an account's build events go, their secret (shown once),
the delivery ledger and replays; the events themselves travel through the outbox."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import urlsplit

import msgspec

from buildsd import clock
from buildsd.config import Settings
from buildsd.crypto import Cipher
from buildsd.db import Connection, Database, Row
from buildsd.errors import InvalidRequestBody, NotFound
from buildsd.store import outbox
from buildsd.wire import CreateEventSubscriptionRequest, EventDelivery, EventSubscription


def allowed(settings: Settings, url: str) -> bool:
    """An http(s) URL whose host the operator's allow-list admits (an empty list: any)."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # "https://]x": not a URL (a bracket opens an IPv6 address)
        return False
    if parts.scheme not in ("http", "https") or not hostname:
        return False
    host, hosts = hostname.lower(), settings.event_hosts
    return not hosts or any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)


def _wire(row: Row, secret: str | None = None) -> EventSubscription:
    return EventSubscription(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        events=json.loads(row["events"]),
        enabled=bool(row["enabled"]),
        created_on=row["created_on"],
        secret=secret,
    )


def _delivery(row: Row) -> EventDelivery:
    values = {name: row[name] for name in EventDelivery.__struct_fields__ if name in row}
    values["message_id"] = row["message_id"] or f"msg_{row['id']}"
    return msgspec.convert(values, EventDelivery)


class EventSubscriptions:
    def __init__(self, db: Database, settings: Settings, cipher: Cipher) -> None:
        self._db = db
        self._settings = settings
        self._cipher = cipher

    async def create(
        self, account_id: str, body: CreateEventSubscriptionRequest
    ) -> EventSubscription:
        if not allowed(self._settings, body.url):
            raise InvalidRequestBody(
                "url: an http(s) URL on a host this server allows (BUILDSD_EVENT_URL_ALLOW_HOSTS)"
            )
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        values: dict[str, object] = {
            "id": secrets.token_hex(16),
            "account_id": account_id,
            "name": body.name,
            "url": body.url,
            "events": json.dumps(sorted(set(body.events))),
            "secret": self._cipher.encrypt(secret),
            "enabled": body.enabled,
            "created_on": clock.now(),
        }
        async with self._db.transaction() as conn:
            await outbox.insert_subscription(conn, values)
            row = await outbox.find_subscription(conn, account_id, str(values["id"]))
        assert row is not None
        return _wire(row, secret)  # the only time the secret is shown

    async def list_(self, account_id: str) -> list[EventSubscription]:
        async with self._db.connection() as conn:
            return [_wire(row) for row in await outbox.subscriptions_of(conn, account_id)]

    async def _get(self, conn: Connection, account_id: str, id_: str) -> Row:
        row = await outbox.find_subscription(conn, account_id, id_)
        if row is None:
            raise NotFound("no such event subscription")
        return row

    async def get(self, account_id: str, id_: str) -> EventSubscription:
        async with self._db.connection() as conn:
            return _wire(await self._get(conn, account_id, id_))

    async def delete(self, account_id: str, id_: str) -> EventSubscription:
        """Delete it (returned); its pending deliveries are given up."""
        async with self._db.transaction() as conn:
            row = await self._get(conn, account_id, id_)
            await outbox.delete_subscription(conn, account_id, id_)
        return _wire(row)

    async def deliveries(self, account_id: str, id_: str) -> list[EventDelivery]:
        async with self._db.connection() as conn:
            await self._get(conn, account_id, id_)
            return [_delivery(row) for row in await outbox.deliveries_of(conn, id_)]

    async def replay(self, account_id: str, id_: str, delivery_id: str) -> EventDelivery:
        """Send a delivery again, as a new ledger entry with the same message id."""
        async with self._db.transaction() as conn:
            await self._get(conn, account_id, id_)
            row = None
            if delivery_id.isdigit() and len(delivery_id) < 19:
                row = await outbox.replay(conn, id_, int(delivery_id), clock.now())
            if row is None:
                raise NotFound("no such delivery of this subscription")
        return _delivery(row)

    async def target(self, row: Row, conn: Connection) -> tuple[str, str] | None:
        """(url, secret) to send an event row to, or None when it may not be sent any more."""
        sub = await outbox.find_subscription(conn, row["account_id"], row["subscription_id"])
        if sub is None or not sub["enabled"] or not allowed(self._settings, sub["url"]):
            return None
        return str(sub["url"]), self._cipher.decrypt(sub["secret"])
