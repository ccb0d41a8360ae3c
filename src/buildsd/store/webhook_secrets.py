"""Each account's own webhook secret per provider, as ciphertext (D22)."""

from __future__ import annotations

from buildsd.db import Connection


async def put(conn: Connection, account_id: str, provider: str, secret: str, now: str) -> None:
    """Set the account's secret for the provider; a new one replaces the old (rotation)."""
    await conn.run(
        "INSERT INTO webhook_secrets (account_id, provider, secret, created_on) "
        "VALUES (:account_id, :provider, :secret, :now) "
        "ON CONFLICT (account_id, provider) DO UPDATE SET secret = excluded.secret, "
        "created_on = excluded.created_on",
        {"account_id": account_id, "provider": provider, "secret": secret, "now": now},
    )


async def find(conn: Connection, account_id: str, provider: str) -> str | None:
    """The ciphertext, or None (also for an account that does not exist)."""
    row = await conn.one(
        "SELECT secret FROM webhook_secrets WHERE account_id = :account_id "
        "AND provider = :provider",
        {"account_id": account_id, "provider": provider},
    )
    return None if row is None else str(row["secret"])
