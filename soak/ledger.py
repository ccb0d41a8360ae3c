"""Every acknowledged write of a soak run, and what the database must therefore hold."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus


@dataclass
class TriggerRecord:
    owner: int  # the client task that alone changes it: its last acknowledged write must stay
    fields: dict[str, Any]  # as last acknowledged
    candidates: list[dict[str, Any]]  # writes sent but never acknowledged since: may have landed
    variables: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    variables_uncertain: bool = False


@dataclass
class BuildRecord:
    trigger_uuid: str
    source: str  # manual | push_event
    status: str = "queued"  # as last seen by a client
    cancels: list[str] = field(default_factory=list)  # outcomes acknowledged cancels answered


@dataclass
class DeliveryRecord:
    delivery_id: str
    status: str  # accepted | duplicate | ignored, as answered
    repo_id: str


@dataclass
class Ledger:
    webhooks: bool = False
    secrets: list[str] = field(default_factory=list)  # values that must never be shown
    tokens: dict[str, str] = field(default_factory=dict)  # build_token_uuid → secret
    connections: dict[str, set[str]] = field(default_factory=dict)  # repo_id → uuids answered
    connection_bodies: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    triggers: dict[str, TriggerRecord] = field(default_factory=dict)
    builds: dict[str, BuildRecord] = field(default_factory=dict)
    deliveries: dict[str, DeliveryRecord] = field(default_factory=dict)
    worker_tags: set[str] = field(default_factory=set)

    def unfinished(self) -> int:
        return sum(1 for b in self.builds.values() if b.status != "stopped")

    def secret_forms(self) -> set[str]:
        return {form for secret in self.secrets for form in forms(secret)}


def forms(secret: str) -> set[str]:
    """A secret as a program may print it (what buildsd's masking promises to hide)."""
    raw = secret.encode()
    found = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        found |= {encoded, encoded.rstrip("=")}
    return {form for form in found if len(form) >= 4}
