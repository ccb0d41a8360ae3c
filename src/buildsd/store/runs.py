"""What runners do to builds: claim, hold a lease, move through states, write logs and events."""

from __future__ import annotations

from typing import Any

from buildsd.conditions import QUEUED, RUNNING, UNFINISHED
from buildsd.db import Connection, Row
from buildsd.store import outbox
from buildsd.store.builds import COLUMNS, rerender

_RETURNING = ", ".join(COLUMNS)

# The oldest queued build of an account that runs fewer than :limit builds. On PostgreSQL the
# row is locked with SKIP LOCKED so runners on other machines pass over it; the caller holds a
# transaction-level advisory lock so two claims cannot both see the same account below its limit.
# (QUEUED and RUNNING, the predicates of the indexes this reads, with no table alias.)
_NEXT = (
    f"SELECT build_uuid FROM builds WHERE {QUEUED} AND ("
    f"SELECT COUNT(*) FROM builds r WHERE r.account_id = builds.account_id AND {RUNNING}"
    ") < :limit ORDER BY created_on, build_uuid LIMIT 1"
)


async def any_queued(conn: Connection) -> bool:
    """Whether any build waits for a runner (the partial index of QUEUED answers it)."""
    return await conn.one(f"SELECT 1 AS queued FROM builds WHERE {QUEUED} LIMIT 1") is not None


async def claim(
    conn: Connection, *, owner: str, now: str, lease_until: str, limit: int
) -> Row | None:
    """Move the next eligible queued build to initializing under `owner`'s lease."""
    pick = _NEXT + (" FOR UPDATE SKIP LOCKED" if conn.dialect == "postgresql" else "")
    row = await conn.one(
        "UPDATE builds SET status = 'initializing', initializing_on = :now, modified_on = :now, "
        "lease_owner = :owner, lease_expires_on = :lease_until "
        f"WHERE build_uuid = ({pick}) AND status = 'queued' RETURNING {_RETURNING}",
        {"owner": owner, "now": now, "lease_until": lease_until, "limit": limit},
    )
    if row is not None:
        await rerender(conn, row["build_uuid"])
        await outbox.build_changed(conn, row["build_uuid"], now)  # D29
    return row


async def renew(conn: Connection, build_uuid: str, owner: str, lease_until: str) -> str | None:
    """Extend the lease; returns the build's status (None if the lease is no longer ours)."""
    row = await conn.one(
        "UPDATE builds SET lease_expires_on = :lease_until WHERE build_uuid = :uuid "
        "AND lease_owner = :owner RETURNING status",
        {"uuid": build_uuid, "owner": owner, "lease_until": lease_until},
    )
    return str(row["status"]) if row is not None else None


async def set_running(conn: Connection, build_uuid: str, owner: str, now: str) -> bool:
    count = await conn.run(
        "UPDATE builds SET status = 'running', running_on = :now, modified_on = :now "
        "WHERE build_uuid = :uuid AND lease_owner = :owner AND status = 'initializing'",
        {"uuid": build_uuid, "owner": owner, "now": now},
    )
    if count:
        await rerender(conn, build_uuid)
        await outbox.build_changed(conn, build_uuid, now)  # D29
    return count > 0


async def record(conn: Connection, build_uuid: str, values: dict[str, Any]) -> None:
    """Facts the run learned: the commit it checked out, the version a deploy reported."""
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    await conn.run(
        f"UPDATE builds SET {assignments} WHERE build_uuid = :uuid", {**values, "uuid": build_uuid}
    )
    await rerender(conn, build_uuid)


async def release(conn: Connection, build_uuid: str) -> None:
    await conn.run(
        "UPDATE builds SET lease_owner = NULL, lease_expires_on = NULL WHERE build_uuid = :uuid",
        {"uuid": build_uuid},
    )


async def expired(conn: Connection, now: str) -> list[Row]:
    return await conn.all(
        "SELECT build_uuid, account_id, lease_owner, lease_expires_on FROM builds "
        f"WHERE {RUNNING} AND lease_expires_on < :now",
        {"now": now},
    )


async def next_log_seq(conn: Connection, build_uuid: str) -> int:
    row = await conn.one(
        "SELECT COALESCE(MAX(seq), 0) AS seq FROM build_log_lines WHERE build_uuid = :uuid",
        {"uuid": build_uuid},
    )
    return int(row["seq"]) + 1 if row else 1


async def append_lines(
    conn: Connection, build_uuid: str, lines: list[tuple[int, int, str]]
) -> None:
    """Insert (seq, epoch_ms, text) rows in one batch."""
    await conn.many(
        "INSERT INTO build_log_lines (build_uuid, seq, ts, line) VALUES (:b, :s, :t, :l)",
        [{"b": build_uuid, "s": seq, "t": ts, "l": text} for seq, ts, text in lines],
    )


async def add_event(conn: Connection, build_uuid: str, type_: str, now: str) -> None:
    """The build's next event, open (one statement: its seq is the next of the build's)."""
    await conn.run(
        "INSERT INTO build_events (build_uuid, seq, type, started_on, ended_on) "
        # Two names for the uuid: PostgreSQL types a parameter once, and the select list's
        # (text) is not the column's (varchar).
        "SELECT :build, COALESCE(MAX(seq), 0) + 1, :type, :now, NULL FROM build_events "
        "WHERE build_uuid = :uuid",
        {"build": build_uuid, "uuid": build_uuid, "type": type_, "now": now},
    )


async def add_events(conn: Connection, build_uuid: str, events: list[tuple[str, str]]) -> None:
    """Events (type, started_on) in order: each ends as the next starts, the last stays open."""
    row = await conn.one(
        "SELECT COALESCE(MAX(seq), 0) AS seq FROM build_events WHERE build_uuid = :uuid",
        {"uuid": build_uuid},
    )
    first = int(row["seq"]) + 1 if row else 1
    ends = [started for _, started in events[1:]] + [None]
    await conn.many(
        "INSERT INTO build_events (build_uuid, seq, type, started_on, ended_on) "
        "VALUES (:uuid, :seq, :type, :started, :ended)",
        [
            {"uuid": build_uuid, "seq": first + i, "type": t, "started": s, "ended": e}
            for i, ((t, s), e) in enumerate(zip(events, ends, strict=True))
        ],
    )


async def end_events(conn: Connection, build_uuid: str, now: str) -> None:
    await conn.run(
        "UPDATE build_events SET ended_on = :now WHERE build_uuid = :uuid AND ended_on IS NULL",
        {"uuid": build_uuid, "now": now},
    )


async def events(conn: Connection, build_uuid: str) -> list[Row]:
    return await conn.all(
        "SELECT type, started_on, ended_on FROM build_events WHERE build_uuid = :uuid ORDER BY seq",
        {"uuid": build_uuid},
    )


async def unfinished_counts(conn: Connection) -> dict[str, int]:
    """How many builds are queued, initializing and running right now (for /metrics)."""
    rows = await conn.all(
        f"SELECT status, COUNT(*) AS n FROM builds WHERE {UNFINISHED} GROUP BY status"
    )
    return {str(row["status"]): int(row["n"]) for row in rows}


async def running_among(conn: Connection, build_uuids: list[str]) -> set[str]:
    """Which of these builds some runner holds (initializing or running) now."""
    if not build_uuids:
        return set()
    names = {f"b{i}": build_uuid for i, build_uuid in enumerate(build_uuids)}
    rows = await conn.all(
        f"SELECT build_uuid FROM builds WHERE {RUNNING} "
        f"AND build_uuid IN ({', '.join(':' + name for name in names)})",
        names,
    )
    return {str(row["build_uuid"]) for row in rows}
