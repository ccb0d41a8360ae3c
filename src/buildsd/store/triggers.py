"""Triggers, read with their repository connection (even a deleted one) and build-token name."""

from __future__ import annotations

from typing import Any

import msgspec

from buildsd.db import Connection, Row
from buildsd.store import paged, required
from buildsd.wire import EmbeddedRepoConnection, Page, Trigger, TriggerSnapshot

LISTS = ("branch_includes", "branch_excludes", "path_includes", "path_excludes")

_SELECT = (
    "SELECT t.trigger_uuid, t.account_id, t.trigger_name, t.external_script_id, "
    "t.build_command, t.deploy_command, t.root_directory, t.branch_includes, t.branch_excludes, "
    "t.path_includes, t.path_excludes, t.build_caching_enabled, t.build_token_uuid, "
    "t.created_on, t.modified_on, t.deleted_on, "
    "COALESCE(bt.build_token_name, '') AS build_token_name, "
    "c.repo_connection_uuid, c.provider_type, c.provider_account_id, c.provider_account_name, "
    "c.repo_id, c.repo_name, c.created_on AS c_created_on, c.modified_on AS c_modified_on, "
    "c.deleted_on AS c_deleted_on "
    "FROM triggers t "
    "JOIN repo_connections c ON c.repo_connection_uuid = t.repo_connection_uuid "
    "LEFT JOIN build_tokens bt ON bt.build_token_uuid = t.build_token_uuid "
)


def connection_of(row: Row) -> EmbeddedRepoConnection:
    return EmbeddedRepoConnection(
        repo_connection_uuid=row["repo_connection_uuid"],
        provider_type=row["provider_type"],
        provider_account_id=row["provider_account_id"],
        provider_account_name=row["provider_account_name"],
        repo_id=row["repo_id"],
        repo_name=row["repo_name"],
        created_on=row["c_created_on"],
        modified_on=row["c_modified_on"],
        deleted_on=row["c_deleted_on"],
    )


def _fields(row: Row) -> dict[str, Any]:
    return {
        "trigger_uuid": row["trigger_uuid"],
        "trigger_name": row["trigger_name"],
        "external_script_id": row["external_script_id"],
        "build_command": row["build_command"],
        "deploy_command": row["deploy_command"],
        "root_directory": row["root_directory"],
        **{name: msgspec.json.decode(row[name]) for name in LISTS},
        "build_caching_enabled": bool(row["build_caching_enabled"]),
    }


def to_wire(row: Row) -> Trigger:
    return Trigger(
        **_fields(row),
        build_token_uuid=row["build_token_uuid"],
        build_token_name=row["build_token_name"],
        repo_connection=connection_of(row),
        created_on=row["created_on"],
        modified_on=row["modified_on"],
        deleted_on=row["deleted_on"],
    )


def to_snapshot(row: Row) -> TriggerSnapshot:
    return TriggerSnapshot(
        **_fields(row),
        repo_connection=connection_of(row),
        created_on=row["created_on"],
        modified_on=row["modified_on"],
        deleted_on=row["deleted_on"],
    )


def encode_lists(values: dict[str, Any]) -> dict[str, Any]:
    """Pattern lists are stored as JSON text."""
    return {k: msgspec.json.encode(v).decode() if k in LISTS else v for k, v in values.items()}


async def insert(conn: Connection, values: dict[str, Any]) -> None:
    columns = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    await conn.run(f"INSERT INTO triggers ({columns}) VALUES ({params})", encode_lists(values))


async def find(conn: Connection, account_id: str, trigger_uuid: str) -> Row | None:
    """A live trigger of this account (another account's uuid is simply absent)."""
    return await conn.one(
        _SELECT + "WHERE t.trigger_uuid = :uuid AND t.account_id = :account_id "
        "AND t.deleted_on IS NULL",
        {"uuid": trigger_uuid, "account_id": account_id},
    )


async def get(conn: Connection, account_id: str, trigger_uuid: str) -> Row:
    return required(await find(conn, account_id, trigger_uuid))


async def get_any(conn: Connection, trigger_uuid: str) -> Row:
    """A trigger, live or deleted, by uuid alone (for builds that embed it)."""
    return required(
        await conn.one(_SELECT + "WHERE t.trigger_uuid = :uuid", {"uuid": trigger_uuid})
    )


async def update(conn: Connection, trigger_uuid: str, changes: dict[str, Any], now: str) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    await conn.run(
        f"UPDATE triggers SET {assignments}, modified_on = :now WHERE trigger_uuid = :uuid",
        {**encode_lists(changes), "now": now, "uuid": trigger_uuid},
    )


async def soft_delete(conn: Connection, trigger_uuid: str, now: str) -> None:
    await conn.run(
        "UPDATE triggers SET deleted_on = :now, modified_on = :now WHERE trigger_uuid = :uuid",
        {"uuid": trigger_uuid, "now": now},
    )


async def list_by_worker(conn: Connection, account_id: str, tag: str) -> list[Row]:
    return await conn.all(
        _SELECT + "WHERE t.account_id = :account_id AND t.external_script_id = :tag "
        "AND t.deleted_on IS NULL ORDER BY t.created_on, t.trigger_uuid",
        {"account_id": account_id, "tag": tag},
    )


async def page(conn: Connection, account_id: str, page: Page) -> tuple[list[Row], int]:
    return await paged(
        conn,
        "SELECT COUNT(*) AS n FROM triggers WHERE account_id = :account_id AND deleted_on IS NULL",
        _SELECT + "WHERE t.account_id = :account_id AND t.deleted_on IS NULL "
        "ORDER BY t.created_on, t.trigger_uuid",
        {"account_id": account_id},
        page,
    )
