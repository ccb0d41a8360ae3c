"""The audit log: one row per write through the API, read newest (or oldest) first per account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from buildsd.db import Connection, Row
from buildsd.store import paged
from buildsd.wire import (
    AuditLog,
    AuditLogAction,
    AuditLogActor,
    AuditLogOwner,
    AuditLogResource,
    Page,
)

# "when" is a reserved word in SQL: quoted everywhere it appears.
_COLUMNS = (
    'id, account_id, "when", action_type, action_result, actor_id, actor_email, actor_ip, '
    "actor_type, credential_id, resource_type, resource_id, operation, status, metadata"
)
_INSERT = (
    f"INSERT INTO audit_logs ({_COLUMNS}, seq) VALUES (:id, :account_id, :when, :action_type, "
    ":action_result, :actor_id, :actor_email, :actor_ip, :actor_type, :credential_id, "
    ":resource_type, :resource_id, :operation, :status, :metadata, :seq)"
)
_metadata = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Filters:
    """What a list may be narrowed by; None means no condition."""

    id: str | None = None
    action_type: str | None = None
    actor_email: str | None = None
    actor_ip: str | None = None
    since: str | None = None  # inclusive, wire-format time
    before: str | None = None  # exclusive
    hide_user_logs: bool = False


def to_wire(row: Row) -> AuditLog:
    metadata = _metadata.decode(row["metadata"])
    # The columns win over anything stored under the same names.
    metadata.update(
        credential_id=row["credential_id"], operation=row["operation"], status=row["status"]
    )
    return AuditLog(
        id=row["id"],
        action=AuditLogAction(type=row["action_type"], result=bool(row["action_result"])),
        actor=AuditLogActor(
            id=row["actor_id"],
            email=row["actor_email"],
            ip=row["actor_ip"],
            type=row["actor_type"],
        ),
        interface="API",
        metadata=metadata,
        owner=AuditLogOwner(id=row["account_id"]),
        resource=AuditLogResource(id=row["resource_id"], type=row["resource_type"]),
        when=row["when"],
    )


async def insert_many(conn: Connection, entries: list[dict[str, Any]]) -> None:
    if len(entries) == 1:  # a write's own entry: one execute costs less than executemany
        await conn.run(_INSERT, entries[0])
    else:
        await conn.many(_INSERT, entries)


def _where(account_id: str, filters: Filters) -> tuple[str, dict[str, Any]]:
    clauses = ["account_id = :account_id"]
    params: dict[str, Any] = {"account_id": account_id}
    for column, value in (
        ("id", filters.id),
        ("action_type", filters.action_type),
        ("actor_email", filters.actor_email),
        ("actor_ip", filters.actor_ip),
    ):
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if filters.since is not None:
        clauses.append('"when" >= :since')
        params["since"] = filters.since
    if filters.before is not None:
        clauses.append('"when" < :before')
        params["before"] = filters.before
    if filters.hide_user_logs:
        clauses.append("actor_type <> 'user'")
    return " AND ".join(clauses), params


async def page(
    conn: Connection, account_id: str, filters: Filters, page: Page, *, newest_first: bool
) -> tuple[list[Row], int]:
    """One page along (account_id, when, seq, id), or (account_id, action_type, when, seq, id)
    when the action is given; the count reads the same index range."""
    where, params = _where(account_id, filters)
    order = "DESC" if newest_first else "ASC"
    return await paged(
        conn,
        f"SELECT COUNT(*) AS n FROM audit_logs WHERE {where}",
        f"SELECT {_COLUMNS} FROM audit_logs WHERE {where} "
        f'ORDER BY "when" {order}, seq {order}, id {order}',
        params,
        page,
    )
