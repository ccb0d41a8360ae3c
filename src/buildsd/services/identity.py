"""Authentication: who a credential is and what it may do (D2, D3), and the views of conventions §4.

Making accounts, users and tokens is administration (`services/administration.py`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buildsd import clock, crypto
from buildsd.config import Settings
from buildsd.db import Database, Row
from buildsd.errors import UnknownAuthKey
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

HEX32 = re.compile(r"^[0-9a-f]{32}$")

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
    # What `allows` answered, by (account, groups): a Caller lives as long as its credential's
    # cache entry (at most CREDENTIAL_CACHE_SECONDS), and its policies never change in it.
    _allowed: dict[tuple[str, frozenset[str]], bool] = field(
        default_factory=dict, compare=False, repr=False
    )

    def effective_status(self, at: datetime | None = None) -> str:
        """active, disabled or expired (a token not yet valid counts as disabled)."""
        if self.status != "active":
            return self.status
        if self.expires_on is None and self.not_before is None:  # no clock to read
            return "active"
        at = at or clock.utc_now()
        if self.expires_on is not None and at >= self.expires_on:
            return "expired"
        if self.not_before is not None and at < self.not_before:
            return "disabled"
        return "active"

    def allows(self, account_id: str, group_ids: frozenset[str]) -> bool:
        """Does any allow policy grant one of `group_ids` on the account, with no deny?"""
        key = (account_id, group_ids)
        allowed = self._allowed.get(key)
        if allowed is None:
            allowed = self._allows(account_id, group_ids)
            if len(self._allowed) < 64:  # a caller names a few accounts: bounded all the same
                self._allowed[key] = allowed
        return allowed

    def _allows(self, account_id: str, group_ids: frozenset[str]) -> bool:
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

    def forget(self) -> None:
        """Drop every cached credential and known account: a revocation made here takes effect
        at once, and so does an emulator's reset (which deletes accounts and tokens)."""
        self._cache.clear()
        self._known_accounts.clear()
