"""Who is signed in: the API token sealed in an HttpOnly cookie, checked as the API checks it."""

from __future__ import annotations

import secrets

from buildsd import crypto
from buildsd.services import Services
from buildsd.services.identity import READ_GROUP_IDS, WRITE_GROUP_IDS, Caller


class SignedOut(Exception):
    """No session, or its token no longer works: back to the sign-in page."""


class Session:
    """The signed-in token and its caller. The token itself is never sent to the browser in the
    clear: the cookie holds it encrypted with the server's secret key (crypto.Cipher), so every
    replica sharing BUILDSD_SECRET_KEY reads it and nothing is stored server-side."""

    def __init__(self, token: str, caller: Caller) -> None:
        self.token = token
        self.caller = caller

    def accounts(self) -> list[str]:
        return sorted(a for a in self.caller.account_ids() if self.caller.allows(a, READ_GROUP_IDS))

    def may_read(self, account_id: str) -> bool:
        return self.caller.allows(account_id, READ_GROUP_IDS)

    def may_write(self, account_id: str) -> bool:
        return self.caller.allows(account_id, WRITE_GROUP_IDS)


async def caller_for(services: Services, token: str) -> Caller | None:
    """The caller of `token` if the Builds API would accept it (D2: active, user-owned)."""
    caller = await services.identity.caller_for_token(token)
    if caller is None or caller.owner_type != "user" or caller.effective_status() != "active":
        return None
    return caller


def seal(services: Services, token: str) -> str:
    return services.cipher.encrypt(token)


async def open_session(services: Services, sealed: str | None) -> Session:
    if not sealed:
        raise SignedOut()
    try:
        token = services.cipher.decrypt(sealed)
    except Exception as exc:  # tampered with, or sealed under another key
        raise SignedOut() from exc
    caller = await caller_for(services, token)
    if caller is None:
        raise SignedOut()
    return Session(token, caller)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie_value: str | None, form_value: str | None) -> bool:
    """Double submit: the form's hidden field must equal the SameSite=Strict cookie."""
    return (
        bool(cookie_value)
        and bool(form_value)
        and crypto.same(cookie_value or "", form_value or "")
    )
