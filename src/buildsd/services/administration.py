"""Administration: the first run's account, user and token (D4), and making accounts, users and
API tokens (the `buildsd accounts|users|tokens` commands and the emulator's controls).

Its refusals are AdminError, not the API's errors: no HTTP operation makes these, so none has a
Cloudflare status or code to answer with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from buildsd import clock, crypto
from buildsd.config import Settings
from buildsd.db import Connection, Database, IntegrityError
from buildsd.errors import AdminError
from buildsd.services.identity import CI_WRITE, PERMISSION_GROUPS, SCRIPTS_WRITE, Identity
from buildsd.store import accounts, api_tokens, users
from buildsd.wire import Account

ADMIN_EMAIL = "admin@buildsd.local"
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, slots=True)
class TokenSummary:
    """An API token as `tokens list` shows it: never its secret, which is not kept."""

    id: str
    name: str
    owner_type: str
    status: str
    expires_on: str | None


@dataclass(frozen=True, slots=True)
class CreatedToken:
    id: str
    value: str


# How long after a first run another process starting on the same database still says whose output
# holds the credentials: replicas started together.
FIRST_RUN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a first run made; printed once by `serve`."""

    account_id: str
    email: str | None
    api_key: str | None
    token: str | None
    token_from_settings: bool = False
    # Another process made them moments ago (replicas started together on a new database): its
    # output has the secrets; this one can only say so.
    made_elsewhere: bool = False


def policy_for(account_id: str, permissions: list[str]) -> dict[str, Any]:
    groups = []
    for name in permissions:
        if name not in PERMISSION_GROUPS:
            raise AdminError(
                f"unknown permission {name!r}; use one of: {', '.join(PERMISSION_GROUPS)}"
            )
        groups.append(dict(PERMISSION_GROUPS[name]))
    return {
        "id": clock.new_hex32(),
        "effect": "allow",
        "permission_groups": groups,
        "resources": {f"com.cloudflare.api.account.{account_id}": "*"},
    }


async def _require_account(conn: Connection, account_id: str) -> None:
    # A typo'd account id: "Not found" alone did not say what was missing.
    if not await accounts.exists(conn, account_id):
        raise AdminError(f"no account {account_id}: `buildsd accounts list` shows them")


class Administration:
    def __init__(self, db: Database, settings: Settings, identity: Identity) -> None:
        self._db = db
        self._settings = settings
        self._identity = identity  # told of revocations, so they take effect at once

    @property
    def first_account(self) -> str | None:
        """The first-run account's id when the settings fix it (BUILDSD_BOOTSTRAP_ACCOUNT_ID:
        always so in `buildsd emulate`)."""
        return self._settings.bootstrap_account_id

    async def bootstrap(self) -> Bootstrap | None:
        """Make the first account, administrator and token on an empty database (D4).

        BUILDSD_BOOTSTRAP_ACCOUNT_ID and BUILDSD_BOOTSTRAP_TOKEN fix their values; when set on a
        database that already has data, the account and token are added if missing, so an
        emulator set-up is reproducible. Returns what was made, or None.
        """
        account_id = self._settings.bootstrap_account_id  # their shapes: config.load_settings
        token = self._settings.bootstrap_token
        async with self._db.transaction(exclusive=True) as conn:
            now = clock.now()
            admin = await users.first(conn)
            email = api_key = None
            first_run_on = now
            if admin is None:
                api_key = crypto.new_global_api_key()
                email = ADMIN_EMAIL
                admin_id = clock.new_hex32()
                await users.insert(
                    conn,
                    id=admin_id,
                    email=email,
                    api_key_hash=crypto.hash_secret(api_key),
                    created_on=now,
                )
            else:
                admin_id = admin["id"]
                first_run_on = admin["created_on"]
            made_account = False
            if account_id is None:
                existing = await accounts.list_all(conn)
                account_id = clock.new_hex32() if not existing else existing[0]["id"]
            if not await accounts.exists(conn, account_id):
                await accounts.insert(conn, id=account_id, name="buildsd", created_on=now)
                await accounts.add_member(
                    conn, account_id=account_id, user_id=admin_id, created_on=now
                )
                made_account = True
            made_token = None
            if token is not None:
                if await api_tokens.find_by_hash(conn, crypto.hash_secret(token)) is None:
                    made_token = token
            elif made_account:
                made_token = crypto.new_api_token()
            if made_token is not None:
                await self._insert_token(
                    conn,
                    value=made_token,
                    name="bootstrap",
                    owner_type="user",
                    user_id=admin_id,
                    account_id=account_id,
                    # Builds and the Workers platform calls: wrangler deploys with it too (D24).
                    permissions=[CI_WRITE["name"], SCRIPTS_WRITE["name"]],
                    expires_on=None,
                    now=now,
                )
        if not (made_account or made_token or email):
            age = clock.parse(now) - clock.parse(first_run_on)
            if age.total_seconds() < FIRST_RUN_SECONDS:
                return Bootstrap(account_id, None, None, None, made_elsewhere=True)
            return None
        # The configured token is the caller's own; only a generated one needs showing.
        shown = made_token if made_token is not None and token is None else None
        return Bootstrap(
            account_id=account_id,
            email=email,
            api_key=api_key,
            token=shown,
            token_from_settings=made_token is not None and token is not None,
        )

    async def create_account(self, name: str, account_id: str | None = None) -> str:
        """A new account (with `account_id`, or a new id); the administrator is its member."""
        async with self._db.transaction(exclusive=True) as conn:
            now = clock.now()
            account_id = account_id or clock.new_hex32()
            await accounts.insert(conn, id=account_id, name=name, created_on=now)
            admin = await users.first(conn)
            if admin is not None:  # the administrator is a member of every account
                await accounts.add_member(
                    conn, account_id=account_id, user_id=admin["id"], created_on=now
                )
        return account_id

    async def list_accounts(self) -> list[Account]:
        async with self._db.connection() as conn:
            return [accounts.to_wire(row) for row in await accounts.list_all(conn)]

    async def create_user(self, email: str, account_id: str) -> str:
        """A user who is a member of the account; returns their Global API Key."""
        email = email.strip().lower()
        if not EMAIL_SHAPE.match(email):
            raise AdminError(f"not an email address: {email!r}")
        api_key = crypto.new_global_api_key()
        async with self._db.transaction(exclusive=True) as conn:
            await _require_account(conn, account_id)
            now = clock.now()
            user_id = clock.new_hex32()
            try:
                await users.insert(
                    conn,
                    id=user_id,
                    email=email,
                    api_key_hash=crypto.hash_secret(api_key),
                    created_on=now,
                )
            except IntegrityError as exc:
                raise AdminError(f"a user with email {email} already exists") from exc
            await accounts.add_member(conn, account_id=account_id, user_id=user_id, created_on=now)
        return api_key

    async def create_token(
        self,
        *,
        account_id: str,
        permissions: list[str],
        owner_type: str = "user",
        user_email: str | None = None,
        name: str | None = None,
        expires_on: str | None = None,
        value: str | None = None,
    ) -> CreatedToken:
        """`value`: the token's secret as given (a seed's), else a new one."""
        if owner_type not in ("user", "account"):
            raise AdminError("the owner of a token is a user or an account")
        if not permissions:
            raise AdminError("a token needs at least one permission")
        if expires_on is not None:
            try:
                expires_on = clock.to_wire(clock.parse(expires_on))
            except ValueError as exc:
                raise AdminError(f"the expiry is not an ISO 8601 time: {exc}") from exc
        value = value or crypto.new_api_token()
        async with self._db.transaction(exclusive=True) as conn:
            await _require_account(conn, account_id)
            user_id = None
            if owner_type == "user":
                user = (
                    await users.find_by_email(conn, user_email.strip().lower())
                    if user_email
                    else await users.first(conn)
                )
                if user is None:
                    raise AdminError(f"no user {user_email or '(administrator)'}")
                user_id = user["id"]
            token_id = await self._insert_token(
                conn,
                value=value,
                name=name or f"{owner_type} token",
                owner_type=owner_type,
                user_id=user_id,
                account_id=account_id,
                permissions=permissions,
                expires_on=expires_on,
                now=clock.now(),
            )
        return CreatedToken(id=token_id, value=value)

    async def _insert_token(
        self,
        conn: Connection,
        *,
        value: str,
        name: str,
        owner_type: str,
        user_id: str | None,
        account_id: str,
        permissions: list[str],
        expires_on: str | None,
        now: str,
    ) -> str:
        token_id = clock.new_hex32()
        await api_tokens.insert(
            conn,
            id=token_id,
            secret_hash=crypto.hash_secret(value),
            name=name,
            owner_type=owner_type,
            user_id=user_id,
            account_id=account_id,
            status="active",
            policies=[policy_for(account_id, permissions)],
            not_before=None,
            expires_on=expires_on,
            issued_on=now,
            modified_on=now,
            revoked_on=None,
        )
        return token_id

    async def list_tokens(self, account_id: str) -> list[TokenSummary]:
        async with self._db.connection() as conn:
            await _require_account(conn, account_id)
            rows = await api_tokens.list_for_account(conn, account_id)
        return [
            TokenSummary(
                id=row["id"],
                name=row["name"],
                owner_type=row["owner_type"],
                status=row["status"],
                expires_on=row["expires_on"],
            )
            for row in rows
        ]

    async def revoke_token(self, token_id: str) -> None:
        async with self._db.transaction() as conn:
            if not await api_tokens.revoke(conn, token_id, clock.now()):
                raise AdminError(f"no active token with id {token_id}")
        self._identity.forget()
