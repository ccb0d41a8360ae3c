"""GitLab's webhooks: Push Hook and Merge Request Hook read as an Event; any other event is
ignored, saying why."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from buildsd.errors import InvalidWebhookPayload
from buildsd.services.webhook_payloads import (
    SHA,
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


class _Project(Struct):
    id: RepoId
    path_with_namespace: str = ""


class _GitLabPush(Struct):
    ref: str
    after: Sha
    project: _Project
    checkout_sha: Sha | None = None
    user_name: str = ""
    commits: list[Commit] = []
    total_commits_count: Annotated[int, Meta(ge=0)] = 0


class _MergeAttributes(Struct):
    source_branch: str
    action: str = ""
    source_project_id: int | None = None
    target_project_id: int | None = None
    title: str = ""
    url: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    oldrev: str | None = None
    last_commit: Commit | None = None


class _GitLabMergeRequest(Struct):
    object_attributes: _MergeAttributes
    project: _Project
    user: Person | None = None


class _GitLabAnyEvent(Struct):
    project: _Project | None = None


def _repo(project: _Project) -> Repo:
    return str(project.id), clean(project.path_with_namespace), ""  # no namespace id sent


_MR_BUILDS = {"open", "reopen", "update"}


def parse(event: str, raw: bytes) -> Event:
    if event in ("Push Hook", "Tag Push Hook"):
        push: _GitLabPush = decode(raw, _GitLabPush)
        repo = _repo(push.project)
        branch, why = branch_of(push.ref)
        if event == "Tag Push Hook":
            branch, why = None, "tag push: tags do not start builds"
        if branch is not None and ZERO.match(push.after):
            return deleted(repo, branch)
        if branch is None:
            return ignored(why, repo)
        sha = push.checkout_sha or push.after
        head = head_of(push.commits, sha)
        return accepted(
            repo,
            source="push_event",
            branch=branch,
            commit_hash=sha.lower(),
            commit_message=clean(head.message) if head else "",
            author=clean((head.author.name if head and head.author else "") or push.user_name),
            changed_files=changed(push.commits),
            # GitLab lists at most 20 commits; the total says how many were pushed.
            commit_count=max(push.total_commits_count, len(push.commits)),
        )
    if event == "Merge Request Hook":
        mr: _GitLabMergeRequest = decode(raw, _GitLabMergeRequest)
        attrs = mr.object_attributes
        repo = _repo(mr.project)
        branch, why = checked(attrs.source_branch)
        if branch is None:
            return ignored(why, repo)
        if attrs.action in ("close", "merge"):  # no closed_at: updated_at is when it closed
            sha = attrs.last_commit.id if attrs.last_commit else ""
            times = (attrs.created_at, attrs.updated_at)
            return closed(repo, attrs.source_branch, sha, attrs.url, times)
        if attrs.action not in _MR_BUILDS:
            return ignored(f"merge request {clean(attrs.action)[:64] or 'event'}: no build", repo)
        if attrs.action == "update" and not attrs.oldrev:
            # GitLab sets oldrev only when the update brought new commits (not for a new title).
            return ignored("merge request updated without new commits: no build", repo)
        if (
            attrs.source_project_id is not None
            and attrs.source_project_id != attrs.target_project_id
        ):
            return from_fork(repo)
        last = attrs.last_commit
        if last is None or not SHA.match(last.id):
            raise InvalidWebhookPayload(
                "a merge request needs last_commit.id, a commit sha",
                pointer="/object_attributes/last_commit",
            )
        user = mr.user or Person()
        return accepted(
            repo,
            source="pull_request",
            action=clean(attrs.action)[:32],
            branch=clean(attrs.source_branch),
            commit_hash=last.id.lower(),
            commit_message=clean(last.message or attrs.title),
            author=clean((last.author.name if last.author else "") or user.name),
            pull_request=PullRequest(
                created_on=wire_time(attrs.created_at), pull_request_url=clean(attrs.url)
            ),
        )
    anything: _GitLabAnyEvent = decode(raw, _GitLabAnyEvent)
    repo = _repo(anything.project) if anything.project else ("", "", "")
    return ignored(f"{event} events do not build", repo)
