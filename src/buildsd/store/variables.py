"""Build variables of a trigger; a secret's value column holds ciphertext."""

from __future__ import annotations

from buildsd.db import Connection, Row


async def list_for(conn: Connection, trigger_uuid: str) -> list[Row]:
    return await conn.all(
        "SELECT key, value, is_secret, created_on FROM environment_variables "
        "WHERE trigger_uuid = :uuid ORDER BY key",
        {"uuid": trigger_uuid},
    )


async def put(
    conn: Connection, *, trigger_uuid: str, key: str, value: str, is_secret: bool, now: str
) -> None:
    await conn.run(
        "INSERT INTO environment_variables (trigger_uuid, key, value, is_secret, created_on) "
        "VALUES (:uuid, :key, :value, :is_secret, :now) "
        "ON CONFLICT (trigger_uuid, key) DO UPDATE SET value = excluded.value, "
        "is_secret = excluded.is_secret, created_on = excluded.created_on",
        {"uuid": trigger_uuid, "key": key, "value": value, "is_secret": is_secret, "now": now},
    )


async def delete(conn: Connection, trigger_uuid: str, key: str) -> bool:
    count = await conn.run(
        "DELETE FROM environment_variables WHERE trigger_uuid = :uuid AND key = :key",
        {"uuid": trigger_uuid, "key": key},
    )
    return count > 0
