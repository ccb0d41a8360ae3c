"""GitHub (and GitHub Enterprise): a commit status per Worker, or with a GitHub App a check run
per Worker, and a PR comment edited in place.

GitHub lets only Apps write check runs (an installation token; a personal or fine-grained
token cannot): with a token the same name and text go in a commit status (docs/forges.md).
"""

from __future__ import annotations

import httpx

from buildsd.forges.github_app import Installations
from buildsd.forges.text import (
    ForgeError,
    check,
    comment,
    context,
    phase,
    repository,
    request_number,
    summary,
)
from buildsd.services.outbox import Delivery, Sent

_STATES = {
    "queued": "pending",
    "running": "pending",
    "success": "success",
    "skipped": "success",
    "failure": "failure",
    "cancelled": "error",
    "error": "error",
}
# A check run's conclusion once the build stopped (terminated: a timeout or a lost runner).
_CONCLUSIONS = {
    "success": "success",
    "skipped": "skipped",
    "failure": "failure",
    "cancelled": "cancelled",
    "error": "failure",
}


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


async def send(client: httpx.AsyncClient, delivery: Delivery) -> Sent:
    """With a token: post the status, then the comment."""
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
    headers = _headers(delivery.token)
    answer = await client.post(
        f"{base}/statuses/{delivery.row['commit_hash']}", json=status, headers=headers
    )
    check(answer.status_code, answer.text)
    return Sent(comment_id=await _comment(client, delivery, base, headers))


async def send_checks(
    client: httpx.AsyncClient, delivery: Delivery, installations: Installations
) -> Sent:
    """With an App: create the build's check run (external_id: the build's uuid, which a
    re-run request names) or update it in place, then the comment."""
    owner, repo = repository(delivery)
    base = f"{delivery.api_url}/repos/{owner}/{repo}"
    headers = _headers(await installations.token(client, delivery, (owner, repo)))
    try:
        check_run_id = await _check_run(client, delivery, base, headers)
        return Sent(
            comment_id=await _comment(client, delivery, base, headers),
            check_run_id=check_run_id,
        )
    except ForgeError as exc:
        if str(exc).startswith("HTTP 401"):  # the token revoked early: trade anew, retry
            installations.forget(delivery)
            raise ForgeError(str(exc), permanent=False) from exc
        raise


async def _check_run(
    client: httpx.AsyncClient, delivery: Delivery, base: str, headers: dict[str, str]
) -> str:
    row = delivery.row
    key, description = phase(delivery)
    run: dict[str, object] = {
        "name": context(delivery),
        "external_id": str(row["build_uuid"]),
        "output": {"title": description, "summary": summary(delivery)},
    }
    if row["preview_url"]:
        run["details_url"] = str(row["preview_url"])
    if key == "queued":
        run["status"] = "queued"
    elif key == "running":
        run["status"] = "in_progress"
    else:
        # The time the build stopped: the row was written in that transaction.
        run.update(status="completed", conclusion=_CONCLUSIONS[key])
        run["completed_at"] = str(row["created_on"])
    if delivery.check_run_id is None:
        run["head_sha"] = str(row["commit_hash"])
        answer = await client.post(f"{base}/check-runs", json=run, headers=headers)
    else:
        answer = await client.patch(
            f"{base}/check-runs/{delivery.check_run_id}", json=run, headers=headers
        )
    check(answer.status_code, answer.text)
    return str(answer.json()["id"])


async def _comment(
    client: httpx.AsyncClient, delivery: Delivery, base: str, headers: dict[str, str]
) -> str | None:
    """Make or edit the PR comment; its id (the earlier one's, or None, without a PR)."""
    number = request_number(delivery, "/pull/")
    if number is None:
        return delivery.comment_id
    body = {"body": comment(delivery)}
    if delivery.comment_id is not None:
        answer = await client.patch(
            f"{base}/issues/comments/{delivery.comment_id}", json=body, headers=headers
        )
    else:
        answer = await client.post(f"{base}/issues/{number}/comments", json=body, headers=headers)
    check(answer.status_code, answer.text)
    return str(answer.json()["id"])
