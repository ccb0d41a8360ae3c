"""Credentials → Caller, with the exact failure of D2 for each way a request can be wrong.

Order of checks (each answered with its own status and code):
  1. no Authorization and no X-Auth-* header     → 401 12005 (Builds) / 400 9106 (elsewhere)
  2. Authorization not `Bearer <non-empty>`      → 400 6003 [6111]
  3. X-Auth-Email / X-Auth-Key missing/malformed → 400 6003 [6100-6103]
  4. token unknown, revoked, expired, disabled,
     or account-owned on a Builds route          → 401 12006 (Builds) / 401 1000 (elsewhere)
  5. email/key pair wrong                         → 403 9103
  6. valid, but no Workers CI group (Builds) or
     Workers Scripts group (the Workers platform
     calls, D24), or no write, on this account,
     or the account is unknown                   → 403 10000
Account-owned tokens are refused on Builds routes only. tests/api/test_auth_matrix.py checks
every operation of the route table against this list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from buildsd.errors import (
    BAD_AUTHORIZATION,
    BAD_EMAIL,
    BAD_KEY,
    MISSING_EMAIL,
    MISSING_KEY,
    AuthenticationError,
    BuildsError,
    Cause,
    InvalidApiToken,
    InvalidRequestHeaders,
    InvalidToken,
    MissingCredentials,
    MissingToken,
)
from buildsd.services.identity import (
    READ_GROUP_IDS,
    SCRIPTS_READ_GROUP_IDS,
    SCRIPTS_WRITE_GROUP_IDS,
    WRITE_GROUP_IDS,
    Caller,
    Identity,
)

# builds:read / builds:write — routes under /accounts/{id}/builds (D2);
# scripts:read / scripts:write — the Workers platform calls (D24): Workers Scripts Read/Write,
#   user or account tokens and Global API Keys alike, v4's general failures (9106, 1000, 10000);
# user-token / account-token — the two tokens/verify endpoints (bearer only);
# account — /accounts and /accounts/{id} (token or Global API Key);
# none — unauthenticated (health, deploy-hook trigger).
Access = Literal[
    "builds:read",
    "builds:write",
    "scripts:read",
    "scripts:write",
    "user-token",
    "account-token",
    "account",
    "none",
]

_EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,200}$")
# Global API Key: 37-45 lowercase hex (pre-2026) or the scannable cfk_ form.
_KEY = re.compile(r"^(?:[0-9a-f]{37,45}|cfk_[A-Za-z0-9]{40,60})$")


def _bearer(value: str) -> str:
    scheme, _, secret = value.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or " " in secret:
        raise InvalidRequestHeaders(chain=(BAD_AUTHORIZATION,))
    return secret


def _key_pair(email: str | None, key: str | None) -> tuple[str, str]:
    causes: list[Cause] = []
    if email is None:
        causes.append(MISSING_EMAIL)
    elif not _EMAIL.match(email.strip()):
        causes.append(BAD_EMAIL)
    if key is None:
        causes.append(MISSING_KEY)
    elif not _KEY.match(key.strip()):
        causes.append(BAD_KEY)
    if causes:
        raise InvalidRequestHeaders(chain=tuple(causes))
    assert email is not None and key is not None
    return email.strip(), key.strip()


async def authenticate(
    headers: Mapping[str, str], access: Access, identity: Identity, account_id: str | None
) -> Caller | None:
    """The caller of a request that needs `access`, or the BuildsError that answers it."""
    if access == "none":
        return None
    builds = access in ("builds:read", "builds:write")
    invalid: type[BuildsError] = InvalidToken if builds else InvalidApiToken
    authorization = headers.get("authorization")
    email, key = headers.get("x-auth-email"), headers.get("x-auth-key")

    if authorization is not None:
        caller = await identity.caller_for_token(_bearer(authorization))
        if caller is None:
            raise invalid()
    elif (email is not None or key is not None) and access not in ("user-token", "account-token"):
        caller = await identity.caller_for_key(*_key_pair(email, key))
    elif builds:
        raise MissingToken()
    else:
        raise MissingCredentials()

    if access == "user-token":
        if caller.owner_type != "user":
            raise InvalidApiToken()
        return caller
    if access == "account-token":
        if caller.owner_type != "account" or caller.account_id != account_id:
            raise InvalidApiToken()
        return caller
    if caller.effective_status() != "active":
        raise invalid()
    if access == "account":
        return caller
    if access in ("scripts:read", "scripts:write"):
        groups = SCRIPTS_WRITE_GROUP_IDS if access == "scripts:write" else SCRIPTS_READ_GROUP_IDS
    else:
        # Builds accepts only user-owned tokens (spec §2a): an account token is "Invalid token".
        if caller.owner_type != "user":
            raise InvalidToken()
        groups = WRITE_GROUP_IDS if access == "builds:write" else READ_GROUP_IDS
    if (
        account_id is None
        or not caller.allows(account_id, groups)
        or not await identity.account_exists(account_id)
    ):
        raise AuthenticationError()
    return caller
