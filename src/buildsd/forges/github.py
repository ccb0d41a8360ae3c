"""GitHub (and GitHub Enterprise): a commit status per Worker and a PR comment edited in place.

Check runs need a GitHub App's installation token, which a personal or fine-grained token is
not; a commit status carries the same name and text and works with a token (docs/forges.md).
"""

from __future__ import annotations

import httpx

from buildsd.forges.text import check, comment, context, phase, repository, request_number
from buildsd.services.outbox import Delivery

_STATES = {
    "queued": "pending",
    "running": "pending",
    "success": "success",
    "skipped": "success",
    "failure": "failure",
    "cancelled": "error",
    "error": "error",
}


def _headers(delivery: Delivery) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {delivery.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


async def send(client: httpx.AsyncClient, delivery: Delivery) -> str | None:
    """Post the status, then the comment; returns the comment's id (None without a PR)."""
    owner, repo = repository(delivery)
    base = f"{delivery.api_url}/repos/{owner}/{repo}"
    key, description = phase(delivery)
    status: dict[str, str] = {
        "state": _STATES[key],
        "context": context(delivery),
        "description": description[:140],
    }
    if delivery.row["preview_url"]:
        status["target_url"] = str(delivery.row["preview_url"])
    answer = await client.post(
        f"{base}/statuses/{delivery.row['commit_hash']}", json=status, headers=_headers(delivery)
    )
    check(answer.status_code, answer.text)
    number = request_number(delivery, "/pull/")
    if number is None:
        return delivery.comment_id
    body = {"body": comment(delivery)}
    if delivery.comment_id is not None:
        answer = await client.patch(
            f"{base}/issues/comments/{delivery.comment_id}", json=body, headers=_headers(delivery)
        )
    else:
        answer = await client.post(
            f"{base}/issues/{number}/comments", json=body, headers=_headers(delivery)
        )
    check(answer.status_code, answer.text)
    return str(answer.json()["id"])
