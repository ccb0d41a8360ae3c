"""Git, by argument list: the clone URL of a connection, and checking out exactly one commit."""

from __future__ import annotations

import re
from collections.abc import Mapping

from buildsd.config import Settings

SHA = re.compile(r"^[0-9a-f]{4,64}$")
# Never asks for a password, never opens an editor, never reads the user's global config.
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_EDITOR": "/bin/true",
}


class CloneURLError(Exception):
    pass


def clone_url(settings: Settings, connection: Mapping[str, str]) -> str:
    """The URL from the provider's BUILDSD_GIT_URL_* template."""
    template = {
        "github": settings.git_url_github,
        "gitlab": settings.git_url_gitlab,
        "gitlab_internal": settings.git_url_gitlab_internal,
        "origin": settings.git_url_origin,
    }.get(connection["provider_type"], "")
    if not template:
        raise CloneURLError(
            f"no clone URL for provider {connection['provider_type']!r}: "
            f"set BUILDSD_GIT_URL_{connection['provider_type'].upper()}"
        )
    try:
        return template.format(
            provider_account_name=connection["provider_account_name"],
            provider_account_id=connection["provider_account_id"],
            repo_name=connection["repo_name"],
            repo_id=connection["repo_id"],
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise CloneURLError(f"bad clone URL template {template!r}: {exc}") from exc


def redact(url: str) -> str:
    """A URL fit for a log line: any user:password@ part removed."""
    return re.sub(r"//[^/@]*@", "//", url)


def clone_commands(url: str, dest: str, branch: str, commit: str) -> list[list[str]]:
    """The git commands that leave `dest` at exactly the build's commit."""
    if commit:
        if not SHA.match(commit):
            raise CloneURLError(f"not a commit hash: {commit!r}")
        return [
            ["git", "clone", "--quiet", "--no-checkout", "--", url, dest],
            ["git", "-C", dest, "checkout", "--quiet", "--detach", commit],
        ]
    if not branch:
        return [["git", "clone", "--quiet", "--depth", "1", "--", url, dest]]
    return [["git", "clone", "--quiet", "--depth", "1", f"--branch={branch}", "--", url, dest]]


def describe_command(dest: str) -> list[str]:
    """Prints sha, author and subject of HEAD, NUL-separated."""
    return ["git", "-C", dest, "log", "-1", "--format=%H%x00%an%x00%s"]
