"""A delivery's provider, event name and id from its headers, and its payload read as an Event by
that provider's module (webhook_github.py, webhook_gitlab.py)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Literal

from buildsd.errors import InvalidWebhookPayload
from buildsd.services import webhook_github, webhook_gitlab
from buildsd.services.webhook_payloads import Event, clean

__all__ = ["PROVIDER_TYPES", "Event", "Provider", "delivery_id", "event_name", "parse"]

Provider = Literal["github", "gitlab"]
# The connections a provider's deliveries may match: Gitea and Forgejo speak GitHub's webhooks
# and are connected as `github` (their clone URL is BUILDSD_GIT_URL_GITHUB's template).
PROVIDER_TYPES: dict[str, tuple[str, ...]] = {
    "github": ("github",),
    "gitlab": ("gitlab", "gitlab_internal"),
}
_TOKEN = re.compile(r"^[\x21-\x7e]{1,200}$")  # a delivery id we store as sent

_EVENT_HEADERS = {
    "github": ("x-github-event", "x-gitea-event", "x-forgejo-event", "x-gogs-event"),
    "gitlab": ("x-gitlab-event",),
}
# GitLab's Idempotency-Key stays the same across retries of one delivery: preferred.
_DELIVERY_HEADERS = {
    "github": ("x-github-delivery", "x-gitea-delivery", "x-forgejo-delivery", "x-gogs-delivery"),
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid"),
}


def event_name(provider: Provider, headers: Mapping[str, str]) -> str:
    for name in _EVENT_HEADERS[provider]:
        value = headers.get(name, "").strip()
        if value:
            return clean(value)[:64]
    raise InvalidWebhookPayload(f"no {_EVENT_HEADERS[provider][0]} header: not a webhook delivery")


def delivery_id(provider: Provider, headers: Mapping[str, str], raw: bytes) -> str:
    """The provider's id; without one, a hash of the body, so a resent body still dedupes."""
    for name in _DELIVERY_HEADERS[provider]:
        value = headers.get(name, "").strip()
        if value:
            if _TOKEN.match(value):
                return value
            return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def parse(provider: Provider, event: str, raw: bytes) -> Event:
    """The delivery read as an Event; InvalidWebhookPayload (400) when it cannot be."""
    if provider == "github":
        return webhook_github.parse(event, raw)
    return webhook_gitlab.parse(event, raw)
