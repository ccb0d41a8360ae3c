"""Gitea and Forgejo: a commit status per Worker (their API is GitHub's shape, token auth)."""

from __future__ import annotations

import httpx

from buildsd.forges.text import check, context, phase, repository
from buildsd.services.outbox import Delivery

_STATES = {
    "queued": "pending",
    "running": "pending",
    "success": "success",
    "skipped": "success",
    "failure": "failure",
    "cancelled": "warning",
    "error": "error",
}


async def send(client: httpx.AsyncClient, delivery: Delivery) -> str | None:
    owner, repo = repository(delivery)
    key, description = phase(delivery)
    status: dict[str, str] = {
        "state": _STATES[key],
        "context": context(delivery),
        "description": description,
    }
    if delivery.row["preview_url"]:
        status["target_url"] = str(delivery.row["preview_url"])
    answer = await client.post(
        f"{delivery.api_url}/repos/{owner}/{repo}/statuses/{delivery.row['commit_hash']}",
        json=status,
        headers={"Authorization": f"token {delivery.token}"},
    )
    check(answer.status_code, answer.text)
    return None
