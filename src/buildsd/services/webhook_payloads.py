"""What the providers' payloads share: the Event matching reads, the fields every provider sends
alike (people, commits, ids, shas), and the rules of reading them (no NUL, no control
characters in a branch, times in wire format). One module per provider parses its own events:
webhook_github.py, webhook_gitlab.py; webhook_events.py picks the provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from buildsd import clock
from buildsd.errors import InvalidWebhookPayload
from buildsd.wire import CONTROL, PullRequest, whole

SHA_PATTERN = whole("[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")  # no trailing newline either
Sha = Annotated[str, Meta(pattern=SHA_PATTERN)]
# GitHub, Gitea and GitLab send numbers; a connection stores them as strings (spec §2).
RepoId = Annotated[int, Meta(ge=0)] | Annotated[str, Meta(min_length=1, max_length=256)]
SHA = re.compile(SHA_PATTERN)
ZERO = re.compile("^0+$")


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
    # GitHub asking for a check run's re-run (`check_run`: rerun_build is its external_id, a
    # build's uuid) or a check suite's (`check_suite`: every Worker's build of commit_hash).
    rerun: Literal["", "check_run", "check_suite"] = ""
    rerun_build: str = ""


# --- payloads: only the fields buildsd reads (payloads are large; the rest is skipped) -----------


class Person(Struct):
    name: str = ""
    login: str = ""
    username: str = ""


class Commit(Struct):
    id: str = ""
    message: str = ""
    author: Person | None = None
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []


def decode(raw: bytes, kind: type[Any]) -> Any:
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


def clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which JSON can smuggle in as \\u0000."""
    return text.replace("\x00", "")


def wire_time(value: str | None, missing: str | None = None) -> str:
    """A provider time in wire format (GitLab's `2013-12-03 17:23:34 UTC` too), else missing/now."""
    if value:
        try:
            return clock.to_wire(clock.parse(value.strip().removesuffix(" UTC")))
        except (ValueError, OverflowError, OSError):
            pass
    return clock.now() if missing is None else missing


def changed(commits: list[Commit]) -> tuple[str, ...]:
    """Every path added, modified or removed by the pushed commits, once each."""
    paths: dict[str, None] = {}
    for commit in commits:
        for path in (*commit.added, *commit.modified, *commit.removed):
            paths[clean(path)] = None
    return tuple(paths)


def checked(branch: str) -> tuple[str | None, str]:
    """No git ref holds a control character (git check-ref-format), and in a build log one
    would forge lines: a delivery naming such a branch is ignored, not built."""
    if CONTROL.search(branch):
        return None, "the branch name holds a control character: not a git branch, not built"
    return clean(branch), ""


def branch_of(ref: str) -> tuple[str | None, str]:
    if ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        return checked(ref[len("refs/heads/") :])
    if ref.startswith("refs/tags/"):
        return None, "tag push: tags do not start builds"
    return None, f"push to {clean(ref)[:200]!r}, which is not a branch"


Repo = tuple[str, str, str]  # (repo_id, full name, owner id or "")


def ignored(reason: str, repo: Repo = ("", "", "")) -> Event:
    return Event(
        "ignored", reason, repo_id=repo[0], repository=repo[1], provider_account_id=repo[2]
    )


def accepted(repo: Repo, **fields: Any) -> Event:
    reason = "stored; matched against triggers next"
    return Event(
        "accepted",
        reason,
        repo_id=repo[0],
        repository=repo[1],
        provider_account_id=repo[2],
        **fields,
    )


def closed(repo: Repo, branch: str, sha: str, url: str, times: tuple[str | None, ...]) -> Event:
    """No build; the matcher sets closed_on (times[1], else "": when received) on its builds."""
    closed = PullRequest(wire_time(times[0]), clean(url), closed_on=wire_time(times[1], ""))
    reason = "pull request closed: no build; its builds get closed_on"
    event = replace(ignored(reason, repo), pull_request=closed)
    return replace(event, branch=clean(branch), commit_hash=sha.lower() if SHA.match(sha) else "")


def deleted(repo: Repo, branch: str) -> Event:
    """No build; the matcher deletes the branch's Previews whose flag says so."""
    event = ignored("branch deleted: nothing to build", repo)
    return replace(event, branch=clean(branch), deleted=True)


def from_fork(repo: Repo) -> Event:
    return ignored("pull request from a fork: not built (its code would get the secrets)", repo)


def head_of(commits: list[Commit], sha: str) -> Commit | None:
    """The pushed commit named `sha`, else the last listed (both providers list oldest first)."""
    head = next((c for c in commits if c.id.lower() == sha.lower()), None)
    return head or (commits[-1] if commits else None)
