"""Every encrypted value buildsd stores, for re-encryption under a new key."""

from __future__ import annotations

from buildsd.db import Connection, Row


async def encrypted(conn: Connection) -> list[Row]:
    """(table, id, key, value) of every ciphertext: build-token secrets, secret variables and
    accounts' webhook secrets (key: the provider) and forge tokens (key: the provider type)."""
    return await conn.all(
        "SELECT 'build_tokens' AS source, build_token_uuid AS id, '' AS key, "
        "build_token_secret AS value FROM build_tokens "
        "UNION ALL SELECT 'environment_variables', trigger_uuid, key, value "
        "FROM environment_variables WHERE is_secret = :yes "
        "UNION ALL SELECT 'webhook_secrets', account_id, provider, secret FROM webhook_secrets "
        "UNION ALL SELECT 'forge_credentials', account_id, provider_type, token "
        "FROM forge_credentials",
        {"yes": True},
    )


async def replace(conn: Connection, source: str, id_: str, key: str, value: str) -> None:
    if source == "build_tokens":
        await conn.run(
            "UPDATE build_tokens SET build_token_secret = :value WHERE build_token_uuid = :id",
            {"value": value, "id": id_},
        )
    elif source == "webhook_secrets":
        await conn.run(
            "UPDATE webhook_secrets SET secret = :value WHERE account_id = :id AND provider = :key",
            {"value": value, "id": id_, "key": key},
        )
    elif source == "forge_credentials":
        await conn.run(
            "UPDATE forge_credentials SET token = :value WHERE account_id = :id "
            "AND provider_type = :key",
            {"value": value, "id": id_, "key": key},
        )
    else:
        await conn.run(
            "UPDATE environment_variables SET value = :value "
            "WHERE trigger_uuid = :id AND key = :key",
            {"value": value, "id": id_, "key": key},
        )
