"""Webhook secrets (D22): the global ones from the settings, each account's own, and verifying a
delivery's signature (GitHub, Gitea, Forgejo) or token (GitLab) against the one its URL names."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from buildsd import clock
from buildsd.config import Settings
from buildsd.crypto import Cipher
from buildsd.db import Database
from buildsd.errors import (
    InvalidRequestBody,
    InvalidWebhookSignature,
    NotFound,
    WebhooksNotConfigured,
)
from buildsd.store import accounts, webhook_secrets

PROVIDERS = ("github", "gitlab")
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")  # D11; the URL's is anyone's input
_SETTINGS = {"github": "BUILDSD_GITHUB_WEBHOOK_SECRET", "gitlab": "BUILDSD_GITLAB_WEBHOOK_TOKEN"}


def _same(expected: str, given: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII text, and a header is anyone's input.
    return hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace"))


def _global_holder(provider: str) -> str:
    return f"the value of {_SETTINGS[provider]}"


def _account_holder(provider: str) -> str:
    return f"the one `buildsd webhooks secret --account ACCOUNT_ID --provider {provider}` printed"


def verify_github(
    secret: str, headers: Mapping[str, str], raw: bytes, holder: str = _global_holder("github")
) -> None:
    """X-Hub-Signature-256 (`sha256=<hex>`), or Gitea's/Forgejo's bare hex, of the raw body."""
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    given = headers.get("x-hub-signature-256")
    if given is not None:
        if not _same("sha256=" + digest, given.lower()):
            raise InvalidWebhookSignature("X-Hub-Signature-256 does not match the body")
        return
    given = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature")
    if given is None:
        raise InvalidWebhookSignature(
            f"no X-Hub-Signature-256 header: the webhook's secret must be {holder}"
        )
    if not _same(digest, given.lower()):
        raise InvalidWebhookSignature("X-Gitea-Signature does not match the body")


def verify_gitlab(
    token: str, headers: Mapping[str, str], holder: str = _global_holder("gitlab")
) -> None:
    given = headers.get("x-gitlab-token")
    if given is None:
        raise InvalidWebhookSignature(
            f"no X-Gitlab-Token header: the webhook's secret token must be {holder}"
        )
    if not _same(token, given):
        raise InvalidWebhookSignature("X-Gitlab-Token does not match")


class WebhookSecrets:
    def __init__(self, db: Database, settings: Settings, cipher: Cipher) -> None:
        self._db = db
        self._settings = settings
        self._cipher = cipher

    async def create(self, account_id: str, provider: str) -> str:
        """A new secret for the account's /webhooks/{provider}/{account_id}, replacing its
        previous one. Returned this once: only its ciphertext is kept."""
        if provider not in PROVIDERS:
            raise InvalidRequestBody(f"provider must be one of {', '.join(PROVIDERS)}")
        secret = secrets.token_urlsafe(32)
        async with self._db.transaction() as conn:
            if not await accounts.exists(conn, account_id):
                raise NotFound("no such account")
            await webhook_secrets.put(
                conn, account_id, provider, self._cipher.encrypt(secret), clock.now()
            )
        return secret

    async def verify(
        self, provider: str, account_id: str | None, headers: Mapping[str, str], raw: bytes
    ) -> None:
        """Against the account's own secret when the URL names an account, else the global
        one; InvalidWebhookSignature (401) or WebhooksNotConfigured (503) if it cannot be."""
        if account_id is None:
            secret = (
                self._settings.github_webhook_secret
                if provider == "github"
                else self._settings.gitlab_webhook_token
            )
            holder = _global_holder(provider)
            if not secret:
                raise WebhooksNotConfigured(f"set {_SETTINGS[provider]} to the webhook's secret")
        else:
            stored = None
            if _ACCOUNT_ID.match(account_id):  # anything else is no account: not looked up
                async with self._db.connection() as conn:
                    stored = await webhook_secrets.find(conn, account_id, provider)
            holder = _account_holder(provider)
            if stored is None:  # an unknown account too: the same answer, nothing to tell
                raise WebhooksNotConfigured(
                    "this account has no secret for this provider: make one with "
                    f"`buildsd webhooks secret --account ACCOUNT_ID --provider {provider}`"
                )
            secret = self._cipher.decrypt(stored)
        if provider == "github":
            verify_github(secret, headers, raw, holder)
        else:
            verify_gitlab(secret, headers, holder)
