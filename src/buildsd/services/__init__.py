"""The rules and the transaction boundary: one class per resource, built once per process."""

from __future__ import annotations

from buildsd.config import Settings
from buildsd.db import Database
from buildsd.services.health import Health
from buildsd.services.identity import Identity
from buildsd.services.repo_connections import RepoConnections


class Services:
    """Every service of one process, sharing one Database."""

    def __init__(self, settings: Settings, db: Database, schema_head: str) -> None:
        self.settings = settings
        self.db = db
        self.identity = Identity(db, settings)
        self.repo_connections = RepoConnections(db)
        self.health = Health(db, schema_head)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
