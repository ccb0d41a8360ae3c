"""What every forge is told about a build: its phase, a one-line description, the comment text."""

from __future__ import annotations

import re
from urllib.parse import quote

from buildsd.services.outbox import Delivery


class ForgeError(Exception):
    """The forge refused or failed an update; `permanent` when retrying cannot help (4xx)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


_PHASES = {
    "success": ("success", "Build succeeded"),
    "fail": ("failure", "Build failed"),
    "cancelled": ("cancelled", "Build cancelled"),
    "terminated": ("error", "Build terminated (timeout or lost runner)"),
    "skipped": ("skipped", "Build skipped (no included path changed)"),
}
_MARKS = {
    "queued": "⏳",
    "running": "🔄",
    "success": "✅",
    "failure": "❌",
    "cancelled": "⛔",
    "error": "❌",
    "skipped": "⏭️",
}


def phase(delivery: Delivery) -> tuple[str, str]:
    """(queued | running | success | failure | cancelled | error | skipped, description)."""
    row = delivery.row
    if row["status"] == "queued":
        return "queued", "Build queued"
    if row["status"] != "stopped":
        return "running", "Build in progress"
    return _PHASES.get(str(row["build_outcome"]), ("error", f"Build {row['build_outcome']}"))


def context(delivery: Delivery) -> str:
    """The status's name: one per Worker, as Cloudflare's check runs are."""
    return f"Workers Builds: {delivery.script}"


def facts(delivery: Delivery) -> list[str]:
    """Cloudflare's table of the build: Build ID, Commit, Script, Version ID, Preview URL."""
    row = delivery.row
    return [
        "| | |",
        "|---|---|",
        f"| **Build ID** | `{row['build_uuid']}` |",
        f"| **Commit** | `{str(row['commit_hash'])[:12]}` |",
        f"| **Script** | {delivery.script} |",
        f"| **Version ID** | {'`' + row['version_id'] + '`' if row['version_id'] else '—'} |",
        f"| **Preview URL** | {row['preview_url'] or '—'} |",
    ]


def comment(delivery: Delivery) -> str:
    """The PR/MR comment, rewritten in place as the build moves on."""
    key, description = phase(delivery)
    table = facts(delivery)
    lines = [f"## {context(delivery)}", "", *table[:2]]
    lines += [f"| **Status** | {_MARKS[key]} {description} |", *table[2:]]
    return "\n".join(lines) + "\n"


def summary(delivery: Delivery) -> str:
    """A check run's summary: the same facts (its title says the phase)."""
    return "\n".join(facts(delivery)) + "\n"


def request_number(delivery: Delivery, marker: str) -> int | None:
    """The pull (`/pull/`) or merge (`/merge_requests/`) request's number, from its URL."""
    raw = delivery.row["pull_request"]
    if not raw:
        return None
    found = re.search(re.escape(marker) + r"(\d+)", str(raw))
    return int(found.group(1)) if found else None


def repository(delivery: Delivery) -> tuple[str, str]:
    """(owner, repo), each one path segment; `owner/repo` in repo_name means repo of owner
    (D23)."""
    owner, repo = str(delivery.row["provider_account_name"]), str(delivery.row["repo_name"])
    if "/" in repo:
        owner, _, repo = repo.rpartition("/")
    return quote(owner, safe=""), quote(repo, safe="")


def check(status: int, body: str) -> None:
    """Raise ForgeError unless 2xx: 408 and 429 and 5xx are worth retrying, other 4xx not."""
    if 200 <= status < 300:
        return
    permanent = 400 <= status < 500 and status not in (408, 429)
    raise ForgeError(f"HTTP {status}: {body[:200]}", permanent=permanent)
