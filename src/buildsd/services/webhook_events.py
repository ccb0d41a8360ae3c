"""What GitHub (and Gitea, Forgejo) and GitLab send, headers and payload, read as one Event."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from buildsd import clock
from buildsd.errors import InvalidWebhookPayload
from buildsd.wire import CONTROL, PullRequest, whole

Provider = Literal["github", "gitlab"]
# The connections a provider's deliveries may match: Gitea and Forgejo speak GitHub's webhooks
# and are connected as `github` (their clone URL is BUILDSD_GIT_URL_GITHUB's template).
PROVIDER_TYPES: dict[str, tuple[str, ...]] = {
    "github": ("github",),
    "gitlab": ("gitlab", "gitlab_internal"),
}

SHA_PATTERN = whole("[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")  # no trailing newline either
Sha = Annotated[str, Meta(pattern=SHA_PATTERN)]
# GitHub, Gitea and GitLab send numbers; a connection stores them as strings (spec §2).
RepoId = Annotated[int, Meta(ge=0)] | Annotated[str, Meta(min_length=1, max_length=256)]
_SHA = re.compile(SHA_PATTERN)
_ZERO = re.compile("^0+$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,200}$")  # a delivery id we store as sent


@dataclass(frozen=True, slots=True)
class Event:
    """A delivery as matching needs it, whatever the provider."""

    status: Literal["accepted", "ignored"]
    reason: str
    source: str = ""  # push_event | pull_request (D12)
    repo_id: str = ""
    repository: str = ""
    provider_account_id: str = ""  # the repository owner's id, when the payload gives it
    action: str = ""  # a pull request's (opened, reopened …): a reopen is no replay of an open
    branch: str = ""
    commit_hash: str = ""
    commit_message: str = ""
    author: str = ""
    changed_files: tuple[str, ...] = ()
    commit_count: int = 0
    # A build's pull_request; for a closed pull request (ignored: no build), closed_on is set.
    pull_request: PullRequest | None = None
    # A push deleting `branch` (ignored: no build): its Preview may go with it (issue 13).
    deleted: bool = False


# --- headers ----------------------------------------------------------------------------------


_EVENT_HEADERS = {
    "github": ("x-github-event", "x-gitea-event", "x-forgejo-event", "x-gogs-event"),
    "gitlab": ("x-gitlab-event",),
}
# GitLab's Idempotency-Key stays the same across retries of one delivery: preferred.
_DELIVERY_HEADERS = {
    "github": ("x-github-delivery", "x-gitea-delivery", "x-forgejo-delivery", "x-gogs-delivery"),
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid"),
}


def event_name(provider: Provider, headers: Mapping[str, str]) -> str:
    for name in _EVENT_HEADERS[provider]:
        value = headers.get(name, "").strip()
        if value:
            return _clean(value)[:64]
    raise InvalidWebhookPayload(f"no {_EVENT_HEADERS[provider][0]} header: not a webhook delivery")


def delivery_id(provider: Provider, headers: Mapping[str, str], raw: bytes) -> str:
    """The provider's id; without one, a hash of the body, so a resent body still dedupes."""
    for name in _DELIVERY_HEADERS[provider]:
        value = headers.get(name, "").strip()
        if value:
            if _TOKEN.match(value):
                return value
            return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# --- payloads: only the fields buildsd reads (payloads are large; the rest is skipped) -----------


class _Owner(Struct):
    id: RepoId | None = None


class _Repository(Struct):
    id: RepoId
    full_name: str = ""
    owner: _Owner | None = None  # what grants are checked against (D21)


class _Person(Struct):
    name: str = ""
    login: str = ""
    username: str = ""


class _Commit(Struct):
    id: str = ""
    message: str = ""
    author: _Person | None = None
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []


class _GitHubPush(Struct):
    ref: str
    after: Sha
    repository: _Repository
    deleted: bool = False
    commits: list[_Commit] = []
    head_commit: _Commit | None = None
    pusher: _Person | None = None


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
    user: _Person | None = None


class _GitHubPullRequest(Struct):
    action: str
    pull_request: _PullRequest
    repository: _Repository


class _AnyEvent(Struct):
    repository: _Repository | None = None


class _Project(Struct):
    id: RepoId
    path_with_namespace: str = ""


class _GitLabPush(Struct):
    ref: str
    after: Sha
    project: _Project
    checkout_sha: Sha | None = None
    user_name: str = ""
    commits: list[_Commit] = []
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
    last_commit: _Commit | None = None


class _GitLabMergeRequest(Struct):
    object_attributes: _MergeAttributes
    project: _Project
    user: _Person | None = None


class _GitLabAnyEvent(Struct):
    project: _Project | None = None


def _decode(raw: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        detail, _, where = text.partition(" - at `$")
        pointer = "/".join(where.rstrip("`").replace("[", ".").replace("]", "").split("."))
        raise InvalidWebhookPayload(detail, pointer=pointer) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidWebhookPayload(f"the body is not valid JSON: {exc}", pointer="") from exc
    except RecursionError as exc:
        raise InvalidWebhookPayload("the body is nested too deeply", pointer="") from exc


def _clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which JSON can smuggle in as \\u0000."""
    return text.replace("\x00", "")


def _time(value: str | None, missing: str | None = None) -> str:
    """A provider time in wire format (GitLab's `2013-12-03 17:23:34 UTC` too), else missing/now."""
    if value:
        try:
            return clock.to_wire(clock.parse(value.strip().removesuffix(" UTC")))
        except (ValueError, OverflowError, OSError):
            pass
    return clock.now() if missing is None else missing


def _changed(commits: list[_Commit]) -> tuple[str, ...]:
    """Every path added, modified or removed by the pushed commits, once each."""
    paths: dict[str, None] = {}
    for commit in commits:
        for path in (*commit.added, *commit.modified, *commit.removed):
            paths[_clean(path)] = None
    return tuple(paths)


def _checked(branch: str) -> tuple[str | None, str]:
    """No git ref holds a control character (git check-ref-format), and in a build log one
    would forge lines: a delivery naming such a branch is ignored, not built."""
    if CONTROL.search(branch):
        return None, "the branch name holds a control character: not a git branch, not built"
    return _clean(branch), ""


def _branch_of(ref: str) -> tuple[str | None, str]:
    if ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        return _checked(ref[len("refs/heads/") :])
    if ref.startswith("refs/tags/"):
        return None, "tag push: tags do not start builds"
    return None, f"push to {_clean(ref)[:200]!r}, which is not a branch"


Repo = tuple[str, str, str]  # (repo_id, full name, owner id or "")


def _ignored(reason: str, repo: Repo = ("", "", "")) -> Event:
    return Event(
        "ignored", reason, repo_id=repo[0], repository=repo[1], provider_account_id=repo[2]
    )


def _accepted(repo: Repo, **fields: Any) -> Event:
    reason = "stored; matched against triggers next"
    return Event(
        "accepted",
        reason,
        repo_id=repo[0],
        repository=repo[1],
        provider_account_id=repo[2],
        **fields,
    )


def _closed(repo: Repo, branch: str, sha: str, url: str, times: tuple[str | None, ...]) -> Event:
    """No build; the matcher sets closed_on (times[1], else "": when received) on its builds."""
    closed = PullRequest(_time(times[0]), _clean(url), closed_on=_time(times[1], ""))
    reason = "pull request closed: no build; its builds get closed_on"
    event = replace(_ignored(reason, repo), pull_request=closed)
    return replace(event, branch=_clean(branch), commit_hash=sha.lower() if _SHA.match(sha) else "")


def _deleted(repo: Repo, branch: str) -> Event:
    """No build; the matcher deletes the branch's Previews whose flag says so."""
    event = _ignored("branch deleted: nothing to build", repo)
    return replace(event, branch=_clean(branch), deleted=True)


def _from_fork(repo: Repo) -> Event:
    return _ignored("pull request from a fork: not built (its code would get the secrets)", repo)


def _github_repo(repository: _Repository) -> Repo:
    owner = repository.owner.id if repository.owner and repository.owner.id is not None else ""
    return str(repository.id), _clean(repository.full_name), _clean(str(owner))


def _gitlab_repo(project: _Project) -> Repo:
    return str(project.id), _clean(project.path_with_namespace), ""  # no namespace id sent


def _head_of(commits: list[_Commit], sha: str) -> _Commit | None:
    """The pushed commit named `sha`, else the last listed (both providers list oldest first)."""
    head = next((c for c in commits if c.id.lower() == sha.lower()), None)
    return head or (commits[-1] if commits else None)


# --- GitHub, Gitea, Forgejo -----------------------------------------------------------------------

# Gitea and Forgejo say "synchronized" where GitHub says "synchronize".
_PR_BUILDS = {"opened", "synchronize", "synchronized", "reopened"}


def parse_github(event: str, raw: bytes) -> Event:
    if event == "push":
        push: _GitHubPush = _decode(raw, _GitHubPush)
        repo = _github_repo(push.repository)
        branch, why = _branch_of(push.ref)
        if branch is not None and (push.deleted or _ZERO.match(push.after)):
            return _deleted(repo, branch)
        if branch is None:
            return _ignored(why, repo)
        head = push.head_commit or _head_of(push.commits, push.after)
        pusher = push.pusher or _Person()
        author = (head.author.name if head and head.author else "") or pusher.name
        return _accepted(
            repo,
            source="push_event",
            branch=branch,
            commit_hash=push.after.lower(),
            commit_message=_clean(head.message) if head else "",
            author=_clean(author or pusher.login or pusher.username),
            changed_files=_changed(push.commits),
            commit_count=len(push.commits),
        )
    if event == "pull_request":
        pr: _GitHubPullRequest = _decode(raw, _GitHubPullRequest)
        repo = _github_repo(pr.repository)
        tip = pr.pull_request.head
        branch, why = _checked(tip.ref)
        if branch is None:
            return _ignored(why, repo)
        if pr.action == "closed":  # merged or not
            got = pr.pull_request
            return _closed(repo, tip.ref, tip.sha, got.html_url, (got.created_at, got.closed_at))
        if pr.action not in _PR_BUILDS:
            return _ignored(f"pull request {_clean(pr.action)[:64]}: no build", repo)
        if tip.repo is None or str(tip.repo.id) != repo[0]:
            return _from_fork(repo)
        user = pr.pull_request.user or _Person()
        return _accepted(
            repo,
            source="pull_request",
            action=_clean(pr.action)[:32],
            branch=_clean(tip.ref),
            commit_hash=tip.sha.lower(),
            commit_message=_clean(pr.pull_request.title),  # the payload carries no commit message
            author=_clean(user.login or user.username or user.name),
            pull_request=PullRequest(
                created_on=_time(pr.pull_request.created_at),
                pull_request_url=_clean(pr.pull_request.html_url),
            ),
        )
    anything: _AnyEvent = _decode(raw, _AnyEvent)
    reason = (
        "ping: this webhook reaches buildsd" if event == "ping" else f"{event} events do not build"
    )
    return _ignored(
        reason, _github_repo(anything.repository) if anything.repository else ("", "", "")
    )


# --- GitLab ---------------------------------------------------------------------------------------

_MR_BUILDS = {"open", "reopen", "update"}


def parse_gitlab(event: str, raw: bytes) -> Event:
    if event in ("Push Hook", "Tag Push Hook"):
        push: _GitLabPush = _decode(raw, _GitLabPush)
        repo = _gitlab_repo(push.project)
        branch, why = _branch_of(push.ref)
        if event == "Tag Push Hook":
            branch, why = None, "tag push: tags do not start builds"
        if branch is not None and _ZERO.match(push.after):
            return _deleted(repo, branch)
        if branch is None:
            return _ignored(why, repo)
        sha = push.checkout_sha or push.after
        head = _head_of(push.commits, sha)
        return _accepted(
            repo,
            source="push_event",
            branch=branch,
            commit_hash=sha.lower(),
            commit_message=_clean(head.message) if head else "",
            author=_clean((head.author.name if head and head.author else "") or push.user_name),
            changed_files=_changed(push.commits),
            # GitLab lists at most 20 commits; the total says how many were pushed.
            commit_count=max(push.total_commits_count, len(push.commits)),
        )
    if event == "Merge Request Hook":
        mr: _GitLabMergeRequest = _decode(raw, _GitLabMergeRequest)
        attrs = mr.object_attributes
        repo = _gitlab_repo(mr.project)
        branch, why = _checked(attrs.source_branch)
        if branch is None:
            return _ignored(why, repo)
        if attrs.action in ("close", "merge"):  # no closed_at: updated_at is when it closed
            sha = attrs.last_commit.id if attrs.last_commit else ""
            times = (attrs.created_at, attrs.updated_at)
            return _closed(repo, attrs.source_branch, sha, attrs.url, times)
        if attrs.action not in _MR_BUILDS:
            return _ignored(f"merge request {_clean(attrs.action)[:64] or 'event'}: no build", repo)
        if attrs.action == "update" and not attrs.oldrev:
            # GitLab sets oldrev only when the update brought new commits (not for a new title).
            return _ignored("merge request updated without new commits: no build", repo)
        if (
            attrs.source_project_id is not None
            and attrs.source_project_id != attrs.target_project_id
        ):
            return _from_fork(repo)
        last = attrs.last_commit
        if last is None or not _SHA.match(last.id):
            raise InvalidWebhookPayload(
                "a merge request needs last_commit.id, a commit sha",
                pointer="/object_attributes/last_commit",
            )
        user = mr.user or _Person()
        return _accepted(
            repo,
            source="pull_request",
            action=_clean(attrs.action)[:32],
            branch=_clean(attrs.source_branch),
            commit_hash=last.id.lower(),
            commit_message=_clean(last.message or attrs.title),
            author=_clean((last.author.name if last.author else "") or user.name),
            pull_request=PullRequest(
                created_on=_time(attrs.created_at), pull_request_url=_clean(attrs.url)
            ),
        )
    anything: _GitLabAnyEvent = _decode(raw, _GitLabAnyEvent)
    repo = _gitlab_repo(anything.project) if anything.project else ("", "", "")
    return _ignored(f"{event} events do not build", repo)


def parse(provider: Provider, event: str, raw: bytes) -> Event:
    """The delivery read as an Event; InvalidWebhookPayload (400) when it cannot be."""
    if provider == "github":
        return parse_github(event, raw)
    return parse_gitlab(event, raw)
