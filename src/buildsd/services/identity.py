"""Identity: accounts, users, API tokens, who a credential is and what it may do (D2–D4)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buildsd import clock, crypto
from buildsd.config import Settings
from buildsd.db import Connection, Database, IntegrityError, Row
from buildsd.errors import AlreadyExists, InvalidRequestBody, NotFound, UnknownAuthKey
from buildsd.store import accounts, api_tokens, users
from buildsd.wire import Account, Page, TokenVerification
from buildsd.wire_workers import Membership, MembershipAccount, User

# Permission groups as Cloudflare reports them (conventions file §4.5).
CI_READ = {"id": "ad99c5ae555e45c4bef5bdf2678388ba", "name": "Workers CI Read"}
CI_WRITE = {"id": "2e095cf436e2455fa62c9a9c2e18c478", "name": "Workers CI Write"}
# The Workers platform calls around Builds (scripts, versions, deployments, subdomain: D24).
SCRIPTS_READ = {"id": "1a71c399035b4950a1bd1466bbe4f420", "name": "Workers Scripts Read"}
SCRIPTS_WRITE = {"id": "e086da7e2179491d91ee5f35b3ca210a", "name": "Workers Scripts Write"}
PERMISSION_GROUPS = {
    group["name"]: group for group in (CI_READ, CI_WRITE, SCRIPTS_READ, SCRIPTS_WRITE)
}
# Write implies read: a read is allowed by either group, a write only by Write.
READ_GROUP_IDS = frozenset({CI_READ["id"], CI_WRITE["id"]})
WRITE_GROUP_IDS = frozenset({CI_WRITE["id"]})
SCRIPTS_READ_GROUP_IDS = frozenset({SCRIPTS_READ["id"], SCRIPTS_WRITE["id"]})
SCRIPTS_WRITE_GROUP_IDS = frozenset({SCRIPTS_WRITE["id"]})

ADMIN_EMAIL = "admin@buildsd.local"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")

# How long a looked-up credential is trusted without asking the database again. A revocation
# made by this process clears the cache at once; one made by another process (the CLI, another
# replica) takes effect within this many seconds.
CREDENTIAL_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: an API token, or a user's Global API Key."""

    credential_id: str  # the token id, or the user id for a Global API Key
    owner_type: str  # "user" or "account"
    user_id: str | None
    account_id: str | None  # the account a token was made for
    status: str
    not_before: datetime | None = None
    expires_on: datetime | None = None
    policies: tuple[dict[str, Any], ...] = ()
    via_key: bool = False
    member_of: frozenset[str] = field(default_factory=frozenset)

    def effective_status(self, at: datetime | None = None) -> str:
        """active, disabled or expired (a token not yet valid counts as disabled)."""
        at = at or clock.utc_now()
        if self.status != "active":
            return self.status
        if self.expires_on is not None and at >= self.expires_on:
            return "expired"
        if self.not_before is not None and at < self.not_before:
            return "disabled"
        return "active"

    def allows(self, account_id: str, group_ids: frozenset[str]) -> bool:
        """Does any allow policy grant one of `group_ids` on the account, with no deny?"""
        if self.via_key:
            return account_id in self.member_of
        allowed = False
        resource = f"com.cloudflare.api.account.{account_id}"
        for policy in self.policies:
            resources = policy.get("resources", {})
            if resource not in resources and "com.cloudflare.api.account.*" not in resources:
                continue
            groups = {group.get("id") for group in policy.get("permission_groups", [])}
            if groups.isdisjoint(group_ids):
                continue
            if policy.get("effect") == "deny":
                return False
            allowed = True
        return allowed

    def account_ids(self) -> set[str]:
        """Accounts this credential names (for GET /accounts)."""
        if self.via_key:
            return set(self.member_of)
        prefix = "com.cloudflare.api.account."
        named = {
            key[len(prefix) :]
            for policy in self.policies
            if policy.get("effect") == "allow"
            for key in policy.get("resources", {})
            if key.startswith(prefix) and not key.endswith("*")
        }
        if self.account_id:
            named.add(self.account_id)
        return named


def _caller_from_token(row: Row) -> Caller:
    return Caller(
        credential_id=row["id"],
        owner_type=row["owner_type"],
        user_id=row["user_id"],
        account_id=row["account_id"],
        status=row["status"],
        not_before=clock.parse(row["not_before"]) if row["not_before"] else None,
        expires_on=clock.parse(row["expires_on"]) if row["expires_on"] else None,
        policies=tuple(api_tokens.policies(row)),
    )


@dataclass(frozen=True, slots=True)
class CreatedToken:
    id: str
    value: str


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a first run made; printed once by `serve`."""

    account_id: str
    email: str | None
    api_key: str | None
    token: str | None
    token_from_settings: bool = False


def policy_for(account_id: str, permissions: list[str]) -> dict[str, Any]:
    groups = []
    for name in permissions:
        if name not in PERMISSION_GROUPS:
            raise InvalidRequestBody(
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
    # The admin commands' typo'd --account: "Not found" alone did not say what was missing.
    if not await accounts.exists(conn, account_id):
        raise NotFound(f"no account {account_id}: `buildsd accounts list` shows them")


class Identity:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._known_accounts: set[str] = set()  # accounts are never deleted: safe to remember

    # --- who is calling -------------------------------------------------------------------

    async def caller_for_token(self, secret: str) -> Caller | None:
        """The token with this secret (revoked or unknown: None); cached briefly."""
        secret_hash = crypto.hash_secret(secret)
        hit = self._cache.get(secret_hash)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._db.connection() as conn:
            row = await api_tokens.find_by_hash(conn, secret_hash)
        caller = _caller_from_token(row) if row is not None else None
        self._remember(secret_hash, caller, now)
        return caller

    async def caller_for_key(self, email: str, key: str) -> Caller:
        """The user with this email and Global API Key, or UnknownAuthKey."""
        cache_key = "key:" + crypto.hash_secret(email.lower() + "\0" + key)
        hit = self._cache.get(cache_key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            caller = hit[1]
        else:
            async with self._db.connection() as conn:
                user = await users.find_by_email(conn, email.lower())
                caller = None
                if user is not None and crypto.same(user["api_key_hash"], crypto.hash_secret(key)):
                    caller = Caller(
                        credential_id=user["id"],
                        owner_type="user",
                        user_id=user["id"],
                        account_id=None,
                        status="active",
                        via_key=True,
                        member_of=frozenset(await accounts.member_account_ids(conn, user["id"])),
                    )
            self._remember(cache_key, caller, now)
        if caller is None:
            raise UnknownAuthKey()
        return caller

    def _remember(self, key: str, caller: Caller | None, now: float) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + CREDENTIAL_CACHE_SECONDS, caller)

    async def account_exists(self, account_id: str) -> bool:
        if account_id in self._known_accounts:
            return True
        if not HEX32.match(account_id):
            return False
        async with self._db.connection() as conn:
            found = await accounts.exists(conn, account_id)
        if found:
            self._known_accounts.add(account_id)
        return found

    # --- the endpoints of conventions §4 --------------------------------------------------

    @staticmethod
    def verification(caller: Caller) -> TokenVerification:
        result = TokenVerification(id=caller.credential_id, status=caller.effective_status())
        if caller.expires_on is not None:
            result.expires_on = clock.to_wire(caller.expires_on)
        if caller.not_before is not None:
            result.not_before = clock.to_wire(caller.not_before)
        return result

    async def visible_accounts(self, caller: Caller, page: Page) -> tuple[list[Account], int]:
        async with self._db.connection() as conn:
            rows, total = await accounts.page_of(conn, sorted(caller.account_ids()), page)
        return [accounts.to_wire(row) for row in rows], total

    async def visible_account(self, caller: Caller, account_id: str) -> Account | None:
        if account_id not in caller.account_ids():
            return None
        async with self._db.connection() as conn:
            row = await accounts.find(conn, account_id)
        return accounts.to_wire(row) if row is not None else None

    async def user(self, caller: Caller) -> User | None:
        """GET /user: the person behind a credential (an account token has none)."""
        if caller.user_id is None:
            return None
        async with self._db.connection() as conn:
            row = await users.find(conn, caller.user_id)
        if row is None:
            return None
        return User(
            id=row["id"],
            email=row["email"],
            first_name=None,
            last_name=None,
            username=row["id"],
            telephone=None,
            country=None,
            zipcode=None,
            created_on=row["created_on"],
            modified_on=row["created_on"],
            two_factor_authentication_enabled=False,
            suspended=False,
        )

    async def memberships(self, caller: Caller, page: Page) -> tuple[list[Membership], int]:
        """GET /memberships: the accounts a credential reaches, each as a membership."""
        accounts_page, total = await self.visible_accounts(caller, page)
        return [
            Membership(
                id=account.id,  # one membership per account and user: the account names it
                account=MembershipAccount(id=account.id, name=account.name),
                status="accepted",
                roles=["Administrator"],
            )
            for account in accounts_page
        ], total

    # --- administration (the CLI) ---------------------------------------------------------

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

    async def create_account(self, name: str) -> str:
        async with self._db.transaction(exclusive=True) as conn:
            now = clock.now()
            account_id = clock.new_hex32()
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
            raise InvalidRequestBody(f"not an email address: {email!r}")
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
                raise AlreadyExists(f"a user with email {email} already exists") from exc
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
    ) -> CreatedToken:
        if owner_type not in ("user", "account"):
            raise InvalidRequestBody("owner must be user or account")
        if not permissions:
            raise InvalidRequestBody("give at least one --permission")
        if expires_on is not None:
            try:
                expires_on = clock.to_wire(clock.parse(expires_on))
            except ValueError as exc:
                raise InvalidRequestBody(f"--expires-on is not an ISO 8601 time: {exc}") from exc
        value = crypto.new_api_token()
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
                    raise NotFound(f"no user {user_email or '(administrator)'}")
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

    async def list_tokens(self, account_id: str) -> list[Row]:
        async with self._db.connection() as conn:
            await _require_account(conn, account_id)
            return await api_tokens.list_for_account(conn, account_id)

    async def revoke_token(self, token_id: str) -> None:
        async with self._db.transaction() as conn:
            if not await api_tokens.revoke(conn, token_id, clock.now()):
                raise NotFound(f"no active token with id {token_id}")
        self._cache.clear()
