"""The outbox (D29): forge updates queued in a build's transaction, claimed and settled later."""

from __future__ import annotations

from typing import Any

from buildsd.db import Connection, Row

_FACTS = (
    "status, build_outcome, external_script_id, commit_hash, provider_account_name, repo_name, "
    "pull_request, version_id, preview_url"
)
UPDATE_COLUMNS = (
    "id, account_id, build_uuid, provider_type, forge, " + _FACTS + ", created_on, state, "
    "attempts, next_attempt_on, last_error, delivered_on, comment_id, subscription_id, "
    "event_type, message_id, build_json"
)


_EVENT = (
    "CASE WHEN b.status = 'running' THEN 'build.started' "
    "WHEN b.build_outcome = 'success' THEN 'build.succeeded' "
    "WHEN b.build_outcome IN ('fail', 'terminated') THEN 'build.failed' "
    "WHEN b.build_outcome = 'cancelled' THEN 'build.canceled' END"
)
_BUILD_FACTS = ", ".join(f"b.{c.strip()}" for c in _FACTS.split(","))


async def build_changed(conn: Connection, build_uuid: str, now: str) -> None:
    """Queue the build's state as it is now: for its account's forge, if the account has a
    credential for the build's provider type, and for each of the account's enabled event
    subscriptions that wants the event this state is. One statement, inside the caller's
    transaction; the joins are on the build's own account, so another account's credential or
    subscription never matches."""
    await conn.run(
        "INSERT INTO outbox (account_id, build_uuid, provider_type, forge, " + _FACTS + ", "
        "created_on, state, attempts, next_attempt_on, subscription_id, event_type, build_json) "
        "SELECT b.account_id, b.build_uuid, b.provider_type, f.forge, " + _BUILD_FACTS + ", "
        ":now, 'pending', 0, :now, NULL, NULL, NULL FROM builds b JOIN forge_credentials f "
        "ON f.account_id = b.account_id AND f.provider_type = b.provider_type "
        # Without a commit there is nothing to put a status on (a manual build before its
        # clone): its later changes, once the runner has recorded the commit, are queued.
        "WHERE b.build_uuid = :uuid AND b.commit_hash != '' "
        "UNION ALL SELECT b.account_id, b.build_uuid, b.provider_type, 'event', "
        + _BUILD_FACTS
        + f", :now, 'pending', 0, :now, s.id, {_EVENT}, b.build_json FROM builds b "
        "JOIN event_subscriptions s ON s.account_id = b.account_id AND s.enabled = :yes "
        f"WHERE b.build_uuid = :uuid AND s.events LIKE '%\"' || ({_EVENT}) || '\"%'",
        {"uuid": build_uuid, "now": now, "yes": True},
    )


# The first pending row of each build and target only: a later update of a build waits for
# the earlier to the same forge or subscription (order per build), and a row another sender
# holds (lease not lapsed) is passed over.
_DUE = (
    "SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_on <= :now "
    "AND (o.lease_until IS NULL OR o.lease_until < :now) AND NOT EXISTS ("
    "SELECT 1 FROM outbox e WHERE e.build_uuid = o.build_uuid AND e.id < o.id "
    "AND e.state = 'pending' AND e.forge = o.forge "
    "AND COALESCE(e.subscription_id, '') = COALESCE(o.subscription_id, '')) "
    "ORDER BY o.next_attempt_on, o.id LIMIT :limit"
)


async def claim(conn: Connection, now: str, lease_until: str, limit: int) -> list[Row]:
    """Lease up to `limit` due rows to the caller, counting the attempt it is about to make.

    The pick is a MATERIALIZED CTE, run once, joined to the rows by primary key. As `WHERE
    id IN (pick … FOR UPDATE SKIP LOCKED LIMIT n)` PostgreSQL planned a nested-loop semi join
    that ran the pick again for every pending row (the outbox's statistics still those of an
    empty table): 4.8 s per claim at 1,500 pending rows, 464 rows leased instead of 32, a core
    taken from the builds (issue 16, docs/benchmarks.md). The pick's own conditions hold for
    what it returns: on PostgreSQL its rows are locked (re-checked at their newest version), on
    SQLite the statement runs under the one writer lock."""
    pick = _DUE + (" FOR UPDATE OF o SKIP LOCKED" if conn.dialect == "postgresql" else "")
    return await conn.all(
        f"WITH picked (picked_id) AS MATERIALIZED ({pick}) "
        "UPDATE outbox SET lease_until = :lease_until, attempts = attempts + 1 "
        f"FROM picked WHERE outbox.id = picked.picked_id RETURNING {UPDATE_COLUMNS}, "
        f"{_PRIOR.format(column='comment_id')} AS prior_comment_id, "
        f"{_PRIOR.format(column='check_run_id')} AS prior_check_run_id",
        {"now": now, "lease_until": lease_until, "limit": limit},
    )


# What an earlier update of the same build made, for this one to edit in place: its PR/MR
# comment, its GitHub check run. Read by the claim's own statement, not two more per update.
_PRIOR = (
    "(SELECT e.{column} FROM outbox e WHERE e.build_uuid = outbox.build_uuid "
    "AND e.{column} IS NOT NULL ORDER BY e.id DESC LIMIT 1)"
)


async def any_due(conn: Connection, now: str) -> bool:
    row = await conn.one(
        "SELECT 1 AS due FROM outbox WHERE state = 'pending' AND next_attempt_on <= :now LIMIT 1",
        {"now": now},
    )
    return row is not None


async def delivered(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Sends that succeeded, each `{id, now, comment_id, check_run_id}`: one executemany (on
    PostgreSQL one pipeline, not a round trip each)."""
    await conn.many(
        "UPDATE outbox SET state = 'delivered', delivered_on = :now, lease_until = NULL, "
        "last_error = NULL, comment_id = :comment_id, check_run_id = :check_run_id "
        "WHERE id = :id",
        rows,
    )


async def retry(conn: Connection, id_: int, error: str, next_attempt_on: str) -> None:
    await conn.run(
        "UPDATE outbox SET lease_until = NULL, last_error = :error, "
        "next_attempt_on = :next WHERE id = :id",
        {"id": id_, "error": error, "next": next_attempt_on},
    )


async def give_up(conn: Connection, id_: int, error: str) -> None:
    await conn.run(
        "UPDATE outbox SET state = 'failed', lease_until = NULL, last_error = :error "
        "WHERE id = :id",
        {"id": id_, "error": error},
    )


async def checked_builds(conn: Connection, account_id: str, commit_hash: str) -> list[Row]:
    """The account's builds of a commit that have a check run, the newest per Worker first:
    what a check suite's re-run asks for (ix_outbox_check_runs)."""
    return await conn.all(
        "SELECT build_uuid, external_script_id, MAX(id) AS newest FROM outbox "
        "WHERE commit_hash = :sha AND check_run_id IS NOT NULL AND account_id = :account_id "
        "GROUP BY build_uuid, external_script_id ORDER BY newest DESC",
        {"sha": commit_hash, "account_id": account_id},
    )


async def prune(conn: Connection, before: str, limit: int) -> int:
    """Delete up to `limit` settled rows (delivered, or given up) created before `before`.

    Rows are appended with the clock's now, so created_on grows with id: the rows older than
    `before` are the ids below the first younger one, found by walking the primary key from
    the start (one row when nothing is old) rather than scanning the whole outbox."""
    boundary = (
        "COALESCE((SELECT id FROM outbox WHERE created_on >= :before ORDER BY id LIMIT 1), "
        "(SELECT MAX(id) + 1 FROM outbox))"
    )
    pick = (
        f"SELECT id FROM outbox WHERE id < {boundary} AND state IN ('delivered', 'failed') "
        "ORDER BY id LIMIT :limit"
    )
    return await conn.run(
        f"DELETE FROM outbox WHERE id IN ({pick})", {"before": before, "limit": limit}
    )


async def of_build(conn: Connection, account_id: str, build_uuid: str) -> list[Row]:
    return await conn.all(
        f"SELECT {UPDATE_COLUMNS} FROM outbox WHERE build_uuid = :uuid "
        "AND account_id = :account_id AND forge != 'event' ORDER BY id",
        {"uuid": build_uuid, "account_id": account_id},
    )


# --- credentials --------------------------------------------------------------------------------


async def put_credential(conn: Connection, values: dict[str, str | None]) -> None:
    await conn.run(
        "INSERT INTO forge_credentials (account_id, provider_type, forge, api_url, token, "
        "created_on, app_id, installation_id) VALUES (:account_id, :provider_type, :forge, "
        ":api_url, :token, :created_on, :app_id, :installation_id) "
        "ON CONFLICT (account_id, provider_type) DO UPDATE SET forge = excluded.forge, "
        "api_url = excluded.api_url, token = excluded.token, created_on = excluded.created_on, "
        "app_id = excluded.app_id, installation_id = excluded.installation_id",
        values,
    )


async def find_credential(conn: Connection, account_id: str, provider_type: str) -> Row | None:
    return await conn.one(
        "SELECT account_id, provider_type, forge, api_url, token, created_on, app_id, "
        "installation_id FROM forge_credentials "
        "WHERE account_id = :account_id AND provider_type = :provider_type",
        {"account_id": account_id, "provider_type": provider_type},
    )


async def credentials_of(conn: Connection, account_id: str) -> list[Row]:
    return await conn.all(
        "SELECT provider_type, forge, api_url, created_on, app_id, installation_id "
        "FROM forge_credentials "
        "WHERE account_id = :account_id ORDER BY provider_type",
        {"account_id": account_id},
    )


async def delete_credential(conn: Connection, account_id: str, provider_type: str) -> int:
    return await conn.run(
        "DELETE FROM forge_credentials WHERE account_id = :account_id "
        "AND provider_type = :provider_type",
        {"account_id": account_id, "provider_type": provider_type},
    )


# --- event subscriptions and their delivery ledger ---------------------------------------------

_SUBSCRIPTION = "id, account_id, name, url, events, enabled, created_on"


async def insert_subscription(conn: Connection, values: dict[str, object]) -> None:
    await conn.run(
        "INSERT INTO event_subscriptions (id, account_id, name, url, events, secret, enabled, "
        "created_on) VALUES (:id, :account_id, :name, :url, :events, :secret, :enabled, "
        ":created_on)",
        values,
    )


async def find_subscription(conn: Connection, account_id: str, id_: str) -> Row | None:
    return await conn.one(
        f"SELECT {_SUBSCRIPTION}, secret FROM event_subscriptions "
        "WHERE id = :id AND account_id = :account_id",
        {"id": id_, "account_id": account_id},
    )


async def subscriptions_of(conn: Connection, account_id: str) -> list[Row]:
    return await conn.all(
        f"SELECT {_SUBSCRIPTION} FROM event_subscriptions WHERE account_id = :account_id "
        "ORDER BY created_on, id",
        {"account_id": account_id},
    )


async def delete_subscription(conn: Connection, account_id: str, id_: str) -> int:
    await conn.run(
        "UPDATE outbox SET state = 'failed', last_error = 'the subscription was deleted' "
        "WHERE subscription_id = :id AND account_id = :account_id AND state = 'pending'",
        {"id": id_, "account_id": account_id},
    )
    return await conn.run(
        "DELETE FROM event_subscriptions WHERE id = :id AND account_id = :account_id",
        {"id": id_, "account_id": account_id},
    )


async def deliveries_of(conn: Connection, subscription_id: str) -> list[Row]:
    return await conn.all(
        f"SELECT {UPDATE_COLUMNS} FROM outbox WHERE subscription_id = :id ORDER BY id",
        {"id": subscription_id},
    )


async def replay(conn: Connection, subscription_id: str, id_: int, now: str) -> Row | None:
    """A pending copy of a delivery (the same message id, so a receiver can tell)."""
    return await conn.one(
        "INSERT INTO outbox (account_id, build_uuid, provider_type, forge, " + _FACTS + ", "
        "created_on, state, attempts, next_attempt_on, subscription_id, event_type, "
        "message_id, build_json) SELECT account_id, build_uuid, provider_type, forge, "
        + _FACTS
        + ", :now, 'pending', 0, :now, subscription_id, event_type, "
        "COALESCE(message_id, 'msg_' || CAST(id AS TEXT)), build_json FROM outbox "
        f"WHERE id = :id AND subscription_id = :sub RETURNING {UPDATE_COLUMNS}",
        {"id": id_, "sub": subscription_id, "now": now},
    )
