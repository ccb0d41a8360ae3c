"""Git, by argument list: the clone URL of a connection, and checking out exactly one commit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

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
    """No clone URL can be made; `field` names the connection's value at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# The connection's values a template may name; each fills exactly one path segment (D23).
FIELDS = ("provider_account_name", "provider_account_id", "repo_name", "repo_id")
# Refused rather than encoded: git (file:// included) and servers decode %XX in a path, so an
# encoded `/` or `..` (and any `%` sent pre-encoded, e.g. "%2f..%2f") would still leave the
# segment; a backslash is a separator to some servers; control characters belong in no name.
_REFUSED = re.compile(r"[/\\%\x00-\x1f\x7f]")
_DOTS = frozenset(("", ".", ".."))


def value_of(connection: Mapping[str, str], field: str) -> str:
    """The connection's `field` as it fills its segment (not yet encoded), else CloneURLError.

    repo_name `owner/repo` (as Cloudflare may record it) is `repo` when `owner` is the
    connection's provider_account_name (compared as GitHub does: in any case)."""
    value = connection[field]
    if field == "repo_name":
        owner = connection["provider_account_name"]
        prefix, slash, rest = value.partition("/")
        if slash and "/" not in rest and prefix not in ("", ".", ".."):  # else: refused below
            if prefix.casefold() != owner.casefold():
                raise CloneURLError(
                    f"repo_name {value!r} names another owner than provider_account_name "
                    f"{owner!r}; send the repository's name alone, or {owner}/<name>",
                    field,
                )
            value = rest
    if value in ("", ".", "..") or _REFUSED.search(value):
        raise CloneURLError(
            f"{field} {value!r} cannot be one segment of a clone URL: it is empty, `.` or `..`, "
            "or holds `/`, `\\`, `%` or a control character",
            field,
        )
    return value


def check_connection(connection: Mapping[str, str]) -> None:
    """Every value a template may name fills one segment, else CloneURLError naming it."""
    values = [connection[field] for field in FIELDS]
    # The usual case at once: nothing refused anywhere (no `/` either, so no owner/repo form),
    # and no value that is empty, `.` or `..`; anything else is looked at value by value.
    if _REFUSED.search("".join(values)) is None and not _DOTS.intersection(values):
        return
    for field in FIELDS:
        value_of(connection, field)


class _Segments:
    """The template's values, each checked and percent-encoded (`@`, `:`, `?`, `#`, whitespace
    and all else outside A-Z a-z 0-9 `-._~`) when the template names it."""

    def __init__(self, connection: Mapping[str, str]) -> None:
        self._connection = connection

    def __getitem__(self, field: str) -> str:
        if field not in FIELDS:
            raise KeyError(field)
        return quote(value_of(self._connection, field), safe="")


def templates(settings: Settings) -> dict[str, str]:
    """Each provider type's BUILDSD_GIT_URL_* template ("" when unset)."""
    return {
        "github": settings.git_url_github,
        "gitlab": settings.git_url_gitlab,
        "gitlab_internal": settings.git_url_gitlab_internal,
        "origin": settings.git_url_origin,
    }


def clone_url(settings: Settings, connection: Mapping[str, str]) -> str:
    """The URL from the provider's BUILDSD_GIT_URL_* template: each value one path segment."""
    template = templates(settings).get(connection["provider_type"], "")
    if not template:
        raise CloneURLError(
            f"no clone URL for provider {connection['provider_type']!r}: "
            f"set BUILDSD_GIT_URL_{connection['provider_type'].upper()}"
        )
    try:
        return template.format_map(_Segments(connection))
    except (KeyError, IndexError, ValueError) as exc:
        # Redacted: the message is the failed build's log line, which the account reads.
        raise CloneURLError(f"bad clone URL template {redact(template)!r}: {exc}") from exc


def unreachable_hint(url: str, provider_type: str) -> str | None:
    """For a failed clone from a public forge's host, which setting points buildsd elsewhere
    (an offline machine or a CI job cannot reach github.com: issue 14)."""
    host = urlsplit(url).hostname or ""
    if host not in ("github.com", "gitlab.com"):
        return None
    return (
        f"buildsd: could not clone from {host}. If this machine cannot reach it (offline, CI), "
        f"set BUILDSD_GIT_URL_{provider_type.upper()} to a reachable template, e.g. "
        "file:///srv/git/{provider_account_name}/{repo_name}.git, or use "
        "BUILDSD_RUNNER=simulate (docs/testing.md)"
    )


def redact(url: str) -> str:
    """A URL fit for a log line: any user:password@ part removed (up to the authority's last
    `@`: a password may hold one unencoded)."""
    return re.sub(r"//[^/?#]*@", "//", url)


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
