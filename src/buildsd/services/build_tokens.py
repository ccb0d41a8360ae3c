"""Build tokens (spec §4, D19): the secret is encrypted at rest and never returned."""

from __future__ import annotations

from buildsd import clock
from buildsd.crypto import Cipher
from buildsd.db import Database
from buildsd.errors import NotFound
from buildsd.services import audit
from buildsd.store import build_tokens
from buildsd.wire import BuildToken, CreateBuildTokenRequest, Page


class BuildTokens:
    def __init__(self, db: Database, cipher: Cipher) -> None:
        self._db = db
        self._cipher = cipher

    async def create(self, account_id: str, body: CreateBuildTokenRequest) -> BuildToken:
        build_token_uuid = clock.new_uuid()
        async with self._db.transaction() as conn:
            await build_tokens.insert(
                conn,
                build_token_uuid=build_token_uuid,
                account_id=account_id,
                build_token_name=body.build_token_name,
                cloudflare_token_id=body.cloudflare_token_id,
                build_token_secret=self._cipher.encrypt(body.build_token_secret),
                now=clock.now(),
            )
            row = await build_tokens.get(conn, account_id, build_token_uuid)
            audit.name_resource(build_token_uuid)
        return build_tokens.to_wire(row)

    async def page(self, account_id: str, page: Page) -> tuple[list[BuildToken], int]:
        async with self._db.connection() as conn:
            rows, total = await build_tokens.page(conn, account_id, page)
        return [build_tokens.to_wire(row) for row in rows], total

    async def delete(self, account_id: str, build_token_uuid: str) -> None:
        async with self._db.transaction() as conn:
            if not await build_tokens.delete(conn, account_id, build_token_uuid):
                raise NotFound()

    async def secret(self, account_id: str, build_token_uuid: str) -> str | None:
        """The token a build deploys with; None once the token was deleted."""
        async with self._db.connection() as conn:
            row = await build_tokens.find(conn, account_id, build_token_uuid)
        return self._cipher.decrypt(row["build_token_secret"]) if row is not None else None
