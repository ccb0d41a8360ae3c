"""Rotating BUILDSD_SECRET_KEY: every stored secret re-encrypted in one transaction."""

from __future__ import annotations

from buildsd.crypto import Cipher
from buildsd.db import Database
from buildsd.store import secrets


class SecretKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def rotate(self, old: Cipher, new: Cipher) -> int:
        """Decrypt with `old`, encrypt with `new`; all or nothing. Returns how many."""
        async with self._db.transaction(exclusive=True) as conn:
            rows = await secrets.encrypted(conn)
            for row in rows:
                plain = old.decrypt(row["value"])
                await secrets.replace(
                    conn, row["source"], row["id"], row["key"], new.encrypt(plain)
                )
        return len(rows)
