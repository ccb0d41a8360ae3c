"""Build events to event subscriptions: Cloudflare's event (type, source, payload, metadata),
sent as a Standard Webhook (webhook-id, webhook-timestamp, webhook-signature)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from buildsd.forges.text import check
from buildsd.services.outbox import Delivery

SCHEMA_VERSION = 1
_TRIGGER = {
    "build_trigger_source": "buildTriggerSource",
    "branch": "branch",
    "commit_hash": "commitHash",
    "commit_message": "commitMessage",
    "author": "author",
    "build_command": "buildCommand",
    "deploy_command": "deployCommand",
    "root_directory": "rootDirectory",
    "repo_name": "repoName",
    "provider_account_name": "providerAccountName",
    "provider_type": "providerType",
}


def event(delivery: Delivery) -> dict[str, Any]:
    """The event as Cloudflare's event subscriptions publish it, from the build as it was."""
    row = delivery.row
    build = json.loads(row["build_json"] or "{}")
    meta = build.get("build_trigger_metadata") or {}
    return {
        "type": f"cf.workersBuilds.worker.{row['event_type']}",
        "source": {"type": "workersBuilds.worker", "workerName": delivery.script},
        "payload": {
            "buildUuid": row["build_uuid"],
            "status": build.get("status", row["status"]),
            "buildOutcome": build.get("build_outcome", row["build_outcome"]),
            "createdAt": build.get("created_on"),
            "initializingAt": build.get("initializing_on"),
            "runningAt": build.get("running_on"),
            "stoppedAt": build.get("stopped_on"),
            "buildTriggerMetadata": {ours: meta.get(name, "") for name, ours in _TRIGGER.items()},
        },
        "metadata": {
            "accountId": row["account_id"],
            "eventSubscriptionId": row["subscription_id"],
            "eventSchemaVersion": SCHEMA_VERSION,
            "eventTimestamp": row["created_on"],
        },
    }


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256, keyed by the base64 after `whsec_`, of
    `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def send(client: httpx.AsyncClient, delivery: Delivery) -> str | None:
    message_id = delivery.row["message_id"] or f"msg_{delivery.row['id']}"
    body = json.dumps(event(delivery), separators=(",", ":")).encode()
    timestamp = int(time.time())  # of this attempt: receivers refuse old timestamps
    answer = await client.post(
        delivery.api_url,
        content=body,
        headers={
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(delivery.token, message_id, timestamp, body),
        },
    )
    check(answer.status_code, answer.text)
    return None
