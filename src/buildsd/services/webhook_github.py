"""GitHub's webhooks (and Gitea's, Forgejo's, which speak them): push and pull_request read as
an Event; any other event is ignored, saying why."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

from msgspec import Struct

from buildsd.services.webhook_payloads import (
    ZERO,
    Commit,
    Event,
    Person,
    Repo,
    RepoId,
    Sha,
    accepted,
    branch_of,
    changed,
    checked,
    clean,
    closed,
    decode,
    deleted,
    from_fork,
    head_of,
    ignored,
    wire_time,
)
from buildsd.wire import PullRequest


class _Owner(Struct):
    id: RepoId | None = None


class _Repository(Struct):
    id: RepoId
    full_name: str = ""
    owner: _Owner | None = None  # what grants are checked against (D21)


class _GitHubPush(Struct):
    ref: str
    after: Sha
    repository: _Repository
    deleted: bool = False
    commits: list[Commit] = []
    head_commit: Commit | None = None
    pusher: Person | None = None


class _Head(Struct):
    ref: str
    sha: Sha
    repo: _Repository | None = None  # null when the fork was deleted


class _PullRequest(Struct):
    head: _Head
    html_url: str = ""
    title: str = ""
    created_at: str | None = None
    closed_at: str | None = None
    user: Person | None = None


class _GitHubPullRequest(Struct):
    action: str
    pull_request: _PullRequest
    repository: _Repository


class _CheckRun(Struct):
    external_id: str | None = None
    head_sha: str = ""


class _GitHubCheckRun(Struct):
    action: str
    check_run: _CheckRun
    repository: _Repository


class _CheckSuite(Struct):
    head_sha: Sha
    head_branch: str | None = None


class _GitHubCheckSuite(Struct):
    action: str
    check_suite: _CheckSuite
    repository: _Repository


class _AnyEvent(Struct):
    repository: _Repository | None = None


def _repo(repository: _Repository) -> Repo:
    owner = repository.owner.id if repository.owner and repository.owner.id is not None else ""
    return str(repository.id), clean(repository.full_name), clean(str(owner))


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Gitea and Forgejo say "synchronized" where GitHub says "synchronize".
_PR_BUILDS = {"opened", "synchronize", "synchronized", "reopened"}


def parse(event: str, raw: bytes) -> Event:
    if event == "push":
        push: _GitHubPush = decode(raw, _GitHubPush)
        repo = _repo(push.repository)
        branch, why = branch_of(push.ref)
        if branch is not None and (push.deleted or ZERO.match(push.after)):
            return deleted(repo, branch)
        if branch is None:
            return ignored(why, repo)
        head = push.head_commit or head_of(push.commits, push.after)
        pusher = push.pusher or Person()
        author = (head.author.name if head and head.author else "") or pusher.name
        return accepted(
            repo,
            source="push_event",
            branch=branch,
            commit_hash=push.after.lower(),
            commit_message=clean(head.message) if head else "",
            author=clean(author or pusher.login or pusher.username),
            changed_files=changed(push.commits),
            commit_count=len(push.commits),
        )
    if event == "pull_request":
        pr: _GitHubPullRequest = decode(raw, _GitHubPullRequest)
        repo = _repo(pr.repository)
        tip = pr.pull_request.head
        branch, why = checked(tip.ref)
        if branch is None:
            return ignored(why, repo)
        if pr.action == "closed":  # merged or not
            got = pr.pull_request
            return closed(repo, tip.ref, tip.sha, got.html_url, (got.created_at, got.closed_at))
        if pr.action not in _PR_BUILDS:
            return ignored(f"pull request {clean(pr.action)[:64]}: no build", repo)
        if tip.repo is None or str(tip.repo.id) != repo[0]:
            return from_fork(repo)
        user = pr.pull_request.user or Person()
        return accepted(
            repo,
            source="pull_request",
            action=clean(pr.action)[:32],
            branch=clean(tip.ref),
            commit_hash=tip.sha.lower(),
            commit_message=clean(pr.pull_request.title),  # the payload carries no commit message
            author=clean(user.login or user.username or user.name),
            pull_request=PullRequest(
                created_on=wire_time(pr.pull_request.created_at),
                pull_request_url=clean(pr.pull_request.html_url),
            ),
        )
    if event in ("check_run", "check_suite"):
        return _rerun(event, raw)
    anything: _AnyEvent = decode(raw, _AnyEvent)
    reason = (
        "ping: this webhook reaches buildsd" if event == "ping" else f"{event} events do not build"
    )
    return ignored(reason, _repo(anything.repository) if anything.repository else ("", "", ""))


def _rerun(event: str, raw: bytes) -> Event:
    """A re-run asked for on GitHub (the check run's or the suite's "Re-run"): accepted, and
    the matcher retries the builds it names, in the accounts that may see the repository."""
    if event == "check_run":
        run: _GitHubCheckRun = decode(raw, _GitHubCheckRun)
        repo, action = _repo(run.repository), run.action
        build_uuid = (run.check_run.external_id or "").lower()
        sha = run.check_run.head_sha.lower()
    else:
        suite: _GitHubCheckSuite = decode(raw, _GitHubCheckSuite)
        repo, action = _repo(suite.repository), suite.action
        build_uuid, sha = "", suite.check_suite.head_sha.lower()
    if action != "rerequested":
        return ignored(f"{event} {clean(action)[:64]}: nothing to do", repo)
    if event == "check_run" and not _UUID.match(build_uuid):
        return ignored("a check run buildsd did not make (its external_id is no build)", repo)
    found = accepted(repo, source="check_run", action="rerequested", commit_hash=sha[:64])
    kind: Literal["check_run", "check_suite"] = "check_run" if build_uuid else "check_suite"
    return replace(found, rerun=kind, rerun_build=build_uuid)
