"""`buildsd webhooks send --from-git DIR`: a signed GitHub push built from a local repository."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import click

from buildsd.cli.remote import http_url

ZERO = "0" * 40
MAX_COMMITS = 20  # GitHub lists at most 20 commits in a push


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    if done.returncode != 0:
        raise click.ClickException(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _commit(repo: Path, sha: str) -> dict[str, Any]:
    head = _git(repo, "show", "-s", "--format=%H%x00%an%x00%ae%x00%aI%x00%B", sha)
    full, name, email, when, message = head.split("\x00", 4)
    changes: dict[str, list[str]] = {"added": [], "removed": [], "modified": []}
    listing = _git(
        repo, "diff-tree", "--root", "--no-commit-id", "-r", "-M", "--name-status", "-z", sha
    )
    parts = listing.split("\x00")
    i = 0
    while i + 1 < len(parts):
        status, path = parts[i], parts[i + 1]
        i += 2
        if status.startswith(("R", "C")):  # renames carry two paths: the old, then the new
            changes["removed" if status.startswith("R") else "added"].append(path)
            path = parts[i]
            i += 1
            changes["added"].append(path)
            continue
        kind = {"A": "added", "D": "removed"}.get(status[:1], "modified")
        changes[kind].append(path)
    person = {"name": name, "email": email, "username": name}
    return {
        "id": full,
        "message": message.strip(),
        "timestamp": when,
        "author": person,
        "committer": person,
        **changes,
    }


def push_payload(
    repo: Path,
    ref: str,
    before: str,
    after: str,
    repo_id: int,
    full_name: str,
    owner_id: int | None,
) -> dict[str, Any]:
    """GitHub's push event (the fields buildsd and most CIs read) for before..after of `repo`."""
    deleted = after == ZERO
    if deleted:
        shas: list[str] = []
    elif before == ZERO:
        shas = _git(repo, "rev-list", "--reverse", f"--max-count={MAX_COMMITS}", after).split()
    else:
        shas = _git(repo, "rev-list", "--reverse", f"{before}..{after}").split()[-MAX_COMMITS:]
    commits = [_commit(repo, sha) for sha in shas]
    owner, _, name = full_name.partition("/")
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "deleted": deleted,
        "created": before == ZERO,
        "forced": False,
        "base_ref": None,
        "repository": {
            "id": repo_id,
            "name": name,
            "full_name": full_name,
            "owner": {"login": owner, "id": owner_id},
        },
        "pusher": {"name": commits[-1]["author"]["name"] if commits else ""},
        "commits": commits,
        "head_commit": commits[-1] if commits else None,
    }


def _send(url: str, payload: dict[str, Any], secret: str) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 (http_url checked the scheme)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "buildsd-webhooks-send",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return dict(json.load(answer))
    except urllib.error.HTTPError as exc:
        raise click.ClickException(
            f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')}"
        ) from exc
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc.reason}") from exc


@click.command("send")
@click.option(
    "--from-git",
    "repo",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A local repository (a work tree or a bare one)",
)
@click.option(
    "--repo-id",
    required=True,
    type=int,
    envvar="BUILDSD_REPO_ID",
    help="The connection's repo_id [BUILDSD_REPO_ID]",
)
@click.option(
    "--full-name",
    envvar="BUILDSD_REPO_FULL_NAME",
    help="owner/name as the connection has it (default: local/<directory>)",
)
@click.option("--owner-id", type=int, help="The provider account id (grants are checked on it)")
@click.option("--ref", help="The pushed ref (default: the branch HEAD names)")
@click.option("--before", help="The ref's old sha (default: the parent of --after, or zeros)")
@click.option("--after", help="The ref's new sha (default: the ref's sha now)")
@click.option(
    "--stdin-refs",
    is_flag=True,
    help="Read `old new ref` lines from stdin, as a post-receive hook gets them",
)
@click.option("--url", envvar="BUILDSD_URL", default="http://127.0.0.1:8700", show_default=True)
@click.option(
    "--account",
    "account_id",
    envvar="BUILDSD_ACCOUNT_ID",
    help="Send to /webhooks/github/{account} (its own secret) instead of the global one",
)
@click.option(
    "--secret",
    envvar="BUILDSD_WEBHOOK_SECRET",
    required=True,
    help="The webhook secret [BUILDSD_WEBHOOK_SECRET]",
)
@click.option("--json", "as_json", is_flag=True)
def send(
    repo: str,
    repo_id: int,
    full_name: str | None,
    owner_id: int | None,
    ref: str | None,
    before: str | None,
    after: str | None,
    stdin_refs: bool,
    url: str,
    account_id: str | None,
    secret: str,
    as_json: bool,
) -> None:
    """Send a correctly signed GitHub push of a local repository's last commits.

    \b
    As a post-receive hook of a bare repository (docs/dashboard.md):
      #!/bin/sh
      export BUILDSD_URL=http://127.0.0.1:8700 BUILDSD_WEBHOOK_SECRET=… BUILDSD_REPO_ID=…
      exec buildsd webhooks send --from-git . --stdin-refs
    """
    path = Path(repo).resolve()
    name = full_name or f"local/{path.name.removesuffix('.git')}"
    pushes: list[tuple[str, str, str]] = []
    if stdin_refs:
        for line in sys.stdin:
            if line.strip():
                old, new, pushed = line.split()
                pushes.append((pushed, old, new))
    else:
        pushed = ref or _git(path, "symbolic-ref", "HEAD").strip()
        new = after or _git(path, "rev-parse", pushed).strip()
        if before:
            old = before
        elif new == ZERO:  # a deletion: the ref's sha before it
            old = _git(path, "rev-parse", pushed).strip()
        else:
            old = _git(path, "rev-list", "--max-count=1", "--skip=1", new).strip() or ZERO
        pushes.append((pushed, old, new))
    target = http_url(url) + "/webhooks/github" + (f"/{account_id}" if account_id else "")
    for pushed, old, new in pushes:
        answer = _send(
            target, push_payload(path, pushed, old, new, repo_id, name, owner_id), secret
        )
        result = answer.get("result") or {}
        if as_json:
            click.echo(json.dumps(answer))
        else:
            click.echo(
                f"{pushed} {new[:10]}: {result.get('status', '?')} "
                f"(delivery {result.get('delivery_uuid', '?')})"
            )
