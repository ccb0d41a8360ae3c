"""GitLab (gitlab.com or self-hosted): a commit status per Worker and an MR note edited in place."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from buildsd.forges.text import check, comment, context, phase, request_number
from buildsd.services.outbox import Delivery

_STATES = {
    "queued": "pending",
    "running": "running",
    "success": "success",
    "skipped": "skipped",
    "failure": "failed",
    "cancelled": "canceled",
    "error": "failed",
}


async def send(client: httpx.AsyncClient, delivery: Delivery) -> str | None:
    """Post the status, then the note; returns the note's id (None without an MR)."""
    # GitLab names a project by its whole path (groups and subgroups), encoded as one segment.
    owner, repo = str(delivery.row["provider_account_name"]), str(delivery.row["repo_name"])
    project = quote(repo if "/" in repo else f"{owner}/{repo}", safe="")
    base = f"{delivery.api_url}/projects/{project}"
    headers = {"PRIVATE-TOKEN": delivery.token}
    key, description = phase(delivery)
    status: dict[str, str] = {
        "state": _STATES[key],
        "name": context(delivery),
        "description": description,
    }
    if delivery.row["preview_url"]:
        status["target_url"] = str(delivery.row["preview_url"])
    answer = await client.post(
        f"{base}/statuses/{delivery.row['commit_hash']}", json=status, headers=headers
    )
    check(answer.status_code, answer.text)
    number = request_number(delivery, "/merge_requests/")
    if number is None:
        return delivery.comment_id
    notes = f"{base}/merge_requests/{number}/notes"
    body = {"body": comment(delivery)}
    if delivery.comment_id is not None:
        answer = await client.put(f"{notes}/{delivery.comment_id}", json=body, headers=headers)
    else:
        answer = await client.post(notes, json=body, headers=headers)
    check(answer.status_code, answer.text)
    return str(answer.json()["id"])
