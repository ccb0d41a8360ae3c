"""Webhook deliveries: stored before they are answered, then matched once; per-account decisions."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from buildsd.db import Connection, Row
from buildsd.errors import NotFound
from buildsd.store import paged
from buildsd.wire import Page, WebhookDecision, WebhookDelivery

_COLUMNS = (
    "d.delivery_uuid, d.provider, d.delivery_id, d.event, d.status, d.reason, d.repo_id, "
    "d.repository, d.branch, d.commit_hash, d.received_on, d.processed_on, "
    "d.secret_account_id, d.provider_account_id, d.seq"
)
# A delivery as an account sees it: only through that account's own match row.
_SELECT = (
    f"SELECT {_COLUMNS}, m.decisions FROM webhook_matches m "
    "JOIN webhook_deliveries d ON d.delivery_uuid = m.delivery_uuid "
)
_decisions = msgspec.json.Decoder(list[WebhookDecision])


def to_wire(row: Row) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_uuid=row["delivery_uuid"],
        delivery_id=row["delivery_id"],
        provider=row["provider"],
        event=row["event"],
        repository=row["repository"],
        branch=row["branch"],
        commit_hash=row["commit_hash"],
        received_on=row["received_on"],
        processed_on=row["processed_on"],
        status=row["status"],
        reason=row["reason"],
        decisions=_decisions.decode(row["decisions"]),
    )


async def insert(conn: Connection, values: dict[str, Any]) -> bool:
    """False when a delivery with this (provider, secret_account_id, delivery_id) is stored
    already: ids are one webhook's, and two accounts' webhooks on one repository are two.

    One statement decides, so two copies of a delivery arriving at once store one (the partial
    unique index leaves `duplicate` rows out, so a duplicate row always goes in).
    """
    columns = tuple(values)
    sql = _inserts.get(columns)
    if sql is None:  # the same few column sets every time: the statement's text made once
        names = ", ".join(columns)
        params = ", ".join(f":{name}" for name in columns)
        sql = (
            f"INSERT INTO webhook_deliveries ({names}) VALUES ({params}) "
            "ON CONFLICT (provider, secret_account_id, delivery_id) WHERE status <> 'duplicate' "
            "DO NOTHING"
        )
        if len(_inserts) < 64:
            _inserts[columns] = sql
    count = await conn.run(sql, values)
    return count > 0


_inserts: dict[tuple[str, ...], str] = {}


async def original(conn: Connection, values: dict[str, Any]) -> Row | None:
    return await conn.one(
        "SELECT delivery_uuid FROM webhook_deliveries WHERE provider = :provider "
        "AND secret_account_id = :secret_account_id AND delivery_id = :delivery_id "
        "AND status <> 'duplicate'",
        {name: values[name] for name in ("provider", "secret_account_id", "delivery_id")},
    )


_REPLAY_KEY = (
    "provider",
    "secret_account_id",
    "repo_id",
    "branch",
    "commit_hash",
    "event",
    "action",
)


async def replayed(conn: Connection, values: dict[str, Any], since: str) -> str | None:
    """An accepted delivery other than this one of the same repository, branch, commit, event
    and action through the same secret, received since `since` (the replay index), or None.

    On PostgreSQL a lock on that key first: two replays arriving at once then see each other,
    one after the other, and exactly one stays accepted. (SQLite has one writer already.)
    """
    params = {  # a dict display: two comprehensions cost a tenth of the acknowledgement
        "provider": values["provider"],
        "secret_account_id": values["secret_account_id"],
        "repo_id": values["repo_id"],
        "branch": values["branch"],
        "commit_hash": values["commit_hash"],
        "event": values["event"],
        "action": values["action"],
        "since": since,
        "delivery_uuid": values["delivery_uuid"],
    }
    if conn.dialect == "postgresql":
        key = {name: params[name] for name in _REPLAY_KEY}
        digest = hashlib.blake2b(repr(sorted(key.items())).encode(), digest_size=4).digest()
        await conn.run(
            "SELECT pg_advisory_xact_lock(8701, CAST(:key AS integer))",
            {"key": int.from_bytes(digest, "big", signed=True)},
        )
    row = await conn.one(
        "SELECT delivery_uuid FROM webhook_deliveries WHERE status = 'accepted' "
        "AND repo_id = :repo_id AND commit_hash = :commit_hash AND received_on >= :since "
        "AND provider = :provider AND secret_account_id = :secret_account_id "
        "AND branch = :branch AND event = :event AND action = :action "
        "AND delivery_uuid <> :delivery_uuid "
        "ORDER BY received_on LIMIT 1",
        params,
    )
    return None if row is None else str(row["delivery_uuid"])


async def mark_duplicate(conn: Connection, delivery_uuid: str, reason: str) -> None:
    """A delivery just stored turns out a replay: it keeps no payload and starts nothing."""
    await conn.run(
        "UPDATE webhook_deliveries SET status = 'duplicate', reason = :reason, payload = NULL "
        "WHERE delivery_uuid = :uuid",
        {"uuid": delivery_uuid, "reason": reason},
    )


async def pending(conn: Connection, limit: int) -> list[str]:
    """Stored and not yet matched, oldest first (a partial index holds exactly these)."""
    rows = await conn.all(
        "SELECT delivery_uuid FROM webhook_deliveries WHERE processed_on IS NULL "
        "ORDER BY received_on, seq LIMIT :limit",
        {"limit": limit},
    )
    return [str(row["delivery_uuid"]) for row in rows]


async def claim(conn: Connection, delivery_uuid: str, now: str) -> Row | None:
    """Mark a pending delivery matched and return it; None if it was matched already.

    Run in the transaction that makes its builds: a second matcher (another replica) waits on
    the row and then finds nothing to claim, so a delivery is never matched twice.
    """
    count = await conn.run(
        "UPDATE webhook_deliveries SET processed_on = :now "
        "WHERE delivery_uuid = :uuid AND processed_on IS NULL",
        {"uuid": delivery_uuid, "now": now},
    )
    if count == 0:
        return None
    return await conn.one(
        f"SELECT {_COLUMNS}, d.payload FROM webhook_deliveries d WHERE d.delivery_uuid = :uuid",
        {"uuid": delivery_uuid},
    )


async def payload(conn: Connection, delivery_uuid: str) -> str | None:
    """The raw body (lists never read it: a payload may weigh a megabyte)."""
    row = await conn.one(
        "SELECT payload FROM webhook_deliveries WHERE delivery_uuid = :uuid",
        {"uuid": delivery_uuid},
    )
    return None if row is None else row["payload"]


async def failed(conn: Connection, delivery_uuid: str, now: str, give_up_at: int) -> None:
    """Count a failed attempt; at `give_up_at` the delivery stops being retried."""
    await conn.run(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, "
        "processed_on = CASE WHEN attempts + 1 >= :limit THEN :now ELSE NULL END, "
        "reason = CASE WHEN attempts + 1 >= :limit "
        "THEN 'matching failed repeatedly: see the server log' ELSE reason END "
        "WHERE delivery_uuid = :uuid AND processed_on IS NULL",
        {"uuid": delivery_uuid, "now": now, "limit": give_up_at},
    )


async def matched_before(conn: Connection, before: str, limit: int) -> list[str]:
    """Deliveries matched before `before`, oldest first, along the processed_on index (an
    unmatched delivery's processed_on is null, so it is never among them). On PostgreSQL the
    rows are locked and others' locked rows skipped: replicas pruning at once take disjoint
    batches."""
    skip = " FOR UPDATE SKIP LOCKED" if conn.dialect == "postgresql" else ""
    rows = await conn.all(
        "SELECT delivery_uuid FROM webhook_deliveries WHERE processed_on < :before "
        f"ORDER BY processed_on LIMIT :limit{skip}",
        {"before": before, "limit": limit},
    )
    return [str(row["delivery_uuid"]) for row in rows]


async def delete(conn: Connection, delivery_uuids: list[str]) -> None:
    """Matched deliveries and every account's decisions on them (a few hundred at a time)."""
    if not delivery_uuids:
        return
    params = {f"u{i}": value for i, value in enumerate(delivery_uuids)}
    names = ", ".join(f":{name}" for name in params)
    await conn.run(f"DELETE FROM webhook_matches WHERE delivery_uuid IN ({names})", params)
    await conn.run(
        f"DELETE FROM webhook_deliveries WHERE delivery_uuid IN ({names}) "
        "AND processed_on IS NOT NULL",
        params,
    )


async def listeners(
    conn: Connection, provider_types: tuple[str, ...], repo_id: str, account_id: str | None = None
) -> list[Row]:
    """Every live connection of the repository, across accounts (or of one account), each with
    its live triggers: one row per trigger, or one row with a null trigger_uuid if it has none."""
    types = {f"type{i}": value for i, value in enumerate(provider_types)}
    where = f"c.provider_type IN ({', '.join(':' + name for name in types)}) "
    params: dict[str, Any] = {**types, "repo_id": repo_id}
    if account_id is not None:
        where += "AND c.account_id = :account_id "
        params["account_id"] = account_id
    return await conn.all(
        "SELECT c.account_id, c.provider_type, c.repo_connection_uuid, t.trigger_uuid "
        "FROM repo_connections c "
        "LEFT JOIN triggers t ON t.repo_connection_uuid = c.repo_connection_uuid "
        "AND t.deleted_on IS NULL "
        f"WHERE {where}AND c.repo_id = :repo_id AND c.deleted_on IS NULL "
        "ORDER BY c.account_id, c.created_on, t.created_on, t.trigger_uuid",
        params,
    )


async def put_match(
    conn: Connection,
    *,
    account_id: str,
    delivery_uuid: str,
    received_on: str,
    seq: int,
    decisions: list[WebhookDecision],
) -> None:
    """This account's decisions for the delivery; a replay replaces them."""
    await conn.run(
        "INSERT INTO webhook_matches (account_id, delivery_uuid, received_on, seq, decisions) "
        "VALUES (:account_id, :uuid, :received_on, :seq, :decisions) "
        "ON CONFLICT (account_id, delivery_uuid) DO UPDATE SET decisions = excluded.decisions",
        {
            "account_id": account_id,
            "uuid": delivery_uuid,
            "received_on": received_on,
            "seq": seq,
            "decisions": msgspec.json.encode(decisions).decode(),
        },
    )


async def get(conn: Connection, account_id: str, delivery_uuid: str) -> Row:
    """A delivery that reached this account's connections; any other is 404 (D6)."""
    row = await conn.one(
        _SELECT + "WHERE m.account_id = :account_id AND m.delivery_uuid = :uuid",
        {"account_id": account_id, "uuid": delivery_uuid},
    )
    if row is None:
        raise NotFound()
    return row


async def page(conn: Connection, account_id: str, page: Page) -> tuple[list[Row], int]:
    """Newest first, read along the (account_id, received_on, seq) index."""
    return await paged(
        conn,
        "SELECT COUNT(*) AS n FROM webhook_matches WHERE account_id = :account_id",
        _SELECT + "WHERE m.account_id = :account_id "
        "ORDER BY m.received_on DESC, m.seq DESC, m.delivery_uuid DESC",
        {"account_id": account_id},
        page,
    )
