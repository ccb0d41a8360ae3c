"""Readiness: the database answers, takes a write, and its schema is the one this version
ships; and whether builds are sandboxed."""

from __future__ import annotations

from buildsd.db import Database
from buildsd.errors import ServiceUnavailable
from buildsd.services.sandboxing import Confinement
from buildsd.store import schema


class Health:
    def __init__(self, db: Database, schema_head: str, sandbox: Confinement) -> None:
        self._db = db
        self._schema_head = schema_head
        self._sandbox = sandbox

    async def ready(self) -> dict[str, str]:
        try:
            async with self._db.connection() as conn:
                current = await schema.current_revision(conn)
        except Exception as exc:  # any driver error means "not ready", with the reason
            raise ServiceUnavailable(
                f"Service unavailable: database unreachable ({type(exc).__name__})"
            ) from exc
        if current != self._schema_head:
            raise ServiceUnavailable(
                f"Service unavailable: database schema is {current}, expected {self._schema_head}; "
                "run `buildsd db upgrade`"
            )
        try:
            await self._db.probe_write()
        except ServiceUnavailable:
            raise  # full, or locked elsewhere: its own reason
        except Exception as exc:  # read-only, permissions, a lost connection
            raise ServiceUnavailable(
                f"Service unavailable: the database cannot write ({type(exc).__name__})"
            ) from exc
        # "off" and "unavailable" are worth a look, not a restart: still ready (200).
        return {"database": "ok", "schema": current, "sandbox": self._sandbox.mode()}
