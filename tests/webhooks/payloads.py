"""Webhook deliveries shaped like GitHub's, Gitea's and GitLab's documented examples, signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

REPO_ID = 562843111  # tests.api.flows.connection's default repo_id, as the number GitHub sends
OWNER = "octo-org"
NAME = "my-worker"
GITHUB_SECRET = "gh-webhook-secret-must-never-leak"
GITLAB_TOKEN = "gl-webhook-token-must-never-leak"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
BEFORE = "0000000000000000000000000000000000000000"


def sha_of(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _github_repository(repo_id: int = REPO_ID) -> dict[str, Any]:
    return {
        "id": repo_id,
        "node_id": "R_kgDOIYxAZw",
        "name": NAME,
        "full_name": f"{OWNER}/{NAME}",
        "private": True,
        "owner": {"login": OWNER, "id": 41612145, "type": "Organization", "site_admin": False},
        "html_url": f"https://github.com/{OWNER}/{NAME}",
        "description": None,
        "fork": False,
        "url": f"https://github.com/{OWNER}/{NAME}",
        "created_at": 1669990272,
        "updated_at": "2024-05-01T10:00:00Z",
        "pushed_at": 1714557600,
        "default_branch": "main",
        "topics": [],
        "visibility": "private",
        "master_branch": "main",
        "organization": OWNER,
    }


def github_commit(
    message: str = "Update the worker",
    added: tuple[str, ...] = (),
    modified: tuple[str, ...] = ("src/index.ts",),
    removed: tuple[str, ...] = (),
    sha: str | None = None,
) -> dict[str, Any]:
    sha = sha or sha_of(message + repr(added + modified + removed))
    person = {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"}
    return {
        "id": sha,
        "tree_id": sha_of("tree" + sha),
        "distinct": True,
        "message": message,
        "timestamp": "2024-05-01T10:00:00+02:00",
        "url": f"https://github.com/{OWNER}/{NAME}/commit/{sha}",
        "author": person,
        "committer": person,
        "added": list(added),
        "removed": list(removed),
        "modified": list(modified),
    }


def github_push(
    branch: str = "main",
    commits: list[dict[str, Any]] | None = None,
    *,
    ref: str | None = None,
    after: str | None = None,
    deleted: bool = False,
    repo_id: int = REPO_ID,
) -> dict[str, Any]:
    """The `push` event (docs.github.com, webhook-events-and-payloads#push)."""
    commits = [github_commit()] if commits is None else commits
    after = after or (commits[-1]["id"] if commits else SHA)
    return {
        "ref": ref or f"refs/heads/{branch}",
        "before": BEFORE if deleted else sha_of("before"),
        "after": BEFORE if deleted else after,
        "repository": _github_repository(repo_id),
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "organization": {"login": OWNER, "id": 41612145},
        "sender": {"login": "ada", "id": 583231, "type": "User", "site_admin": False},
        "created": False,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{OWNER}/{NAME}/compare/abc...def",
        "commits": [] if deleted else commits,
        "head_commit": None if deleted or not commits else dict(commits[-1]),
    }


def github_pull_request(
    action: str = "opened",
    branch: str = "feature/login",
    sha: str = SHA,
    *,
    number: int = 42,
    fork: bool = False,
) -> dict[str, Any]:
    """The `pull_request` event; head.repo is the fork's for a pull request from a fork."""
    repository = _github_repository()
    head_repo = _github_repository(999) if fork else repository
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{OWNER}/{NAME}/pulls/{number}",
            "id": 1875398,
            "html_url": f"https://github.com/{OWNER}/{NAME}/pull/{number}",
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "locked": False,
            "title": "Add a login page",
            "user": {"login": "ada", "id": 583231, "type": "User"},
            "body": "Adds a login page.\n\nCloses #41",
            "created_at": "2024-05-01T09:30:00Z",
            "updated_at": "2024-05-01T10:00:00Z",
            "closed_at": "2024-05-02T10:00:00Z" if action == "closed" else None,
            "merged_at": None,
            "draft": False,
            "head": {"label": f"ada:{branch}", "ref": branch, "sha": sha, "repo": head_repo},
            "base": {"label": f"{OWNER}:main", "ref": "main", "sha": BEFORE, "repo": repository},
            "commits": 3,
            "additions": 120,
            "deletions": 4,
            "changed_files": 5,
        },
        "repository": repository,
        "sender": {"login": "ada", "id": 583231, "type": "User"},
    }


def gitea_push(branch: str = "main", commits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Gitea's `push` event: GitHub's shape with Gitea's own extras (compare_url, total_commits)."""
    commits = [github_commit()] if commits is None else commits
    return {
        "ref": f"refs/heads/{branch}",
        "before": sha_of("before"),
        "after": commits[-1]["id"],
        "compare_url": f"https://gitea.example.com/{OWNER}/{NAME}/compare/a...b",
        "commits": commits,
        "total_commits": len(commits),
        "head_commit": commits[-1],
        "repository": {
            "id": REPO_ID,
            "owner": {"id": 1, "login": OWNER, "full_name": "", "username": OWNER},
            "name": NAME,
            "full_name": f"{OWNER}/{NAME}",
            "private": False,
            "html_url": f"https://gitea.example.com/{OWNER}/{NAME}",
            "default_branch": "main",
        },
        "pusher": {"id": 1, "login": "ada", "full_name": "Ada Lovelace", "username": "ada"},
        "sender": {"id": 1, "login": "ada", "username": "ada"},
    }


def gitlab_commit(
    message: str = "Update the worker",
    added: tuple[str, ...] = (),
    modified: tuple[str, ...] = ("src/index.ts",),
    removed: tuple[str, ...] = (),
) -> dict[str, Any]:
    sha = sha_of("gitlab" + message + repr(added + modified + removed))
    return {
        "id": sha,
        "message": message + "\n",
        "title": message,
        "timestamp": "2024-05-01T10:00:00+02:00",
        "url": f"https://gitlab.com/{OWNER}/{NAME}/-/commit/{sha}",
        "author": {"name": "Grace Hopper", "email": "grace@example.com"},
        "added": list(added),
        "modified": list(modified),
        "removed": list(removed),
    }


def _gitlab_project(project_id: int = REPO_ID) -> dict[str, Any]:
    return {
        "id": project_id,
        "name": NAME,
        "description": "",
        "web_url": f"https://gitlab.com/{OWNER}/{NAME}",
        "avatar_url": None,
        "git_ssh_url": f"git@gitlab.com:{OWNER}/{NAME}.git",
        "git_http_url": f"https://gitlab.com/{OWNER}/{NAME}.git",
        "namespace": OWNER,
        "visibility_level": 0,
        "path_with_namespace": f"{OWNER}/{NAME}",
        "default_branch": "main",
        "ci_config_path": "",
        "homepage": f"https://gitlab.com/{OWNER}/{NAME}",
    }


def gitlab_push(
    branch: str = "main",
    commits: list[dict[str, Any]] | None = None,
    *,
    ref: str | None = None,
    total: int | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    """The "Push Hook" (docs.gitlab.com, webhook_events#push-events); commits oldest first."""
    commits = [gitlab_commit()] if commits is None else commits
    after = BEFORE if deleted else (commits[-1]["id"] if commits else SHA)
    kind = "tag_push" if (ref or "").startswith("refs/tags/") else "push"
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": sha_of("before"),
        "after": after,
        "ref": ref or f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": None if deleted else after,
        "message": None,
        "user_id": 4,
        "user_name": "Grace Hopper",
        "user_username": "grace",
        "user_email": "",
        "user_avatar": "https://gitlab.com/uploads/user/avatar/4/grace.png",
        "project_id": REPO_ID,
        "project": _gitlab_project(),
        "repository": {"name": NAME, "url": f"git@gitlab.com:{OWNER}/{NAME}.git"},
        "commits": [] if deleted else commits,
        "total_commits_count": len(commits) if total is None else total,
    }


def gitlab_merge_request(
    action: str = "open",
    branch: str = "feature/login",
    sha: str = SHA,
    *,
    oldrev: str | None = None,
    source_project_id: int = REPO_ID,
) -> dict[str, Any]:
    """The "Merge Request Hook" (docs.gitlab.com, webhook_events#merge-request-events)."""
    attributes: dict[str, Any] = {
        "id": 99,
        "iid": 7,
        "target_branch": "main",
        "source_branch": branch,
        "source_project_id": source_project_id,
        "target_project_id": REPO_ID,
        "author_id": 51,
        "title": "Add a login page",
        "created_at": "2024-05-01 09:30:00 UTC",
        "updated_at": "2024-05-01 10:00:00 UTC",
        "state": "merged" if action == "merge" else "opened",
        "merge_status": "can_be_merged",
        "description": "Adds a login page.",
        "url": f"https://gitlab.com/{OWNER}/{NAME}/-/merge_requests/7",
        "source": _gitlab_project(source_project_id),
        "target": _gitlab_project(),
        "last_commit": {
            "id": sha,
            "message": "Add a login page\n",
            "title": "Add a login page",
            "timestamp": "2024-05-01T10:00:00+02:00",
            "url": f"https://gitlab.com/{OWNER}/{NAME}/-/commit/{sha}",
            "author": {"name": "Grace Hopper", "email": "grace@example.com"},
        },
        "work_in_progress": False,
        "action": action,
    }
    if oldrev:
        attributes["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Grace Hopper", "username": "grace"},
        "project": _gitlab_project(),
        "object_attributes": attributes,
        "labels": [],
        "changes": {},
        "repository": {"name": NAME, "url": f"git@gitlab.com:{OWNER}/{NAME}.git"},
    }


# --- signing ---------------------------------------------------------------------------------


def body_of(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def github_headers(
    body: bytes, event: str = "push", delivery: str | None = None, secret: str = GITHUB_SECRET
) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/a1b2c3d",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": f"sha256={signature}",
    }


def gitea_headers(body: bytes, event: str = "push", secret: str = GITHUB_SECRET) -> dict[str, str]:
    delivery = str(uuid.uuid4())
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def gitlab_headers(
    event: str = "Push Hook", delivery: str | None = None, token: str = GITLAB_TOKEN
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.5.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.com",
        "X-Gitlab-Token": token,
    }
