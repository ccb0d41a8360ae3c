"""Clone URLs (D23): each template value fills one path segment, percent-encoded or refused."""

from __future__ import annotations

import pytest

from buildsd import git
from buildsd.config import load_settings

TEMPLATE = "file:///srv/git/{provider_account_name}/{repo_name}.git"
SETTINGS = load_settings(env={}, git_url_github=TEMPLATE, git_url_origin="https://x/{repo_id}")


def url(**fields: str) -> str:
    connection = {
        "provider_type": "github",
        "provider_account_name": "octo-org",
        "provider_account_id": "41612145",
        "repo_name": "my-worker",
        "repo_id": "562843111",
        **fields,
    }
    return git.clone_url(SETTINGS, connection)


def test_plain_names_fill_the_template() -> None:
    assert url() == "file:///srv/git/octo-org/my-worker.git"
    assert url(repo_name="my.worker_2-x~") == "file:///srv/git/octo-org/my.worker_2-x~.git"


def test_owner_slash_repo_means_that_owners_repo() -> None:
    """Cloudflare records repo_name with or without its owner; setup scripts send both."""
    assert url(repo_name="octo-org/my-worker") == "file:///srv/git/octo-org/my-worker.git"
    assert url(repo_name="Octo-Org/my-worker") == "file:///srv/git/octo-org/my-worker.git"
    with pytest.raises(git.CloneURLError, match="another owner") as refused:
        url(repo_name="someone-else/my-worker")
    assert refused.value.field == "repo_name"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("my worker", "my%20worker"),
        ("a\u00a0b", "a%C2%A0b"),
        ("user@host", "user%40host"),
        ("a:b", "a%3Ab"),
        ("what?", "what%3F"),
        ("issue#1", "issue%231"),
        ("部署", "%E9%83%A8%E7%BD%B2"),
        ("...", "..."),
    ],
)
def test_other_characters_are_percent_encoded(value: str, encoded: str) -> None:
    assert url(repo_name=value) == f"file:///srv/git/octo-org/{encoded}.git"
    assert url(provider_account_name=value, repo_name="r") == f"file:///srv/git/{encoded}/r.git"


@pytest.mark.parametrize(
    "value",
    [
        "../../buildsd/",
        "..",
        ".",
        "",
        "a/b/c",
        "%2f..%2f",
        "..%2F..%2Fsecret",
        "%2e%2e",
        "50%",
        "a\\b",
        "a\nb",
        "a\x00b",
        "octo-org/",
        "octo-org/..",
        "octo-org/../x",
    ],
)
def test_a_value_that_could_leave_its_segment_is_refused(value: str) -> None:
    with pytest.raises(git.CloneURLError, match="repo_name") as refused:
        url(repo_name=value)
    assert refused.value.field == "repo_name"
    with pytest.raises(git.CloneURLError) as refused:
        url(provider_account_name=value if value != "octo-org/" else "a/b")
    assert refused.value.field == "provider_account_name"
    with pytest.raises(git.CloneURLError) as refused:
        url(provider_type="origin", repo_id=value or "/")
    assert refused.value.field == "repo_id"


def test_only_the_values_a_template_uses_are_checked() -> None:
    """A stored row with an odd id still builds where the template never puts that id."""
    assert url(repo_id="a/b", provider_account_id="..") == "file:///srv/git/octo-org/my-worker.git"
    with pytest.raises(git.CloneURLError, match="bad clone URL template"):
        git.clone_url(
            load_settings(env={}, git_url_github="file:///{nope}"), {"provider_type": "github"}
        )


def test_a_bad_template_is_named_without_its_credentials() -> None:
    """The message is the failed build's log line: the account reads it."""
    settings = load_settings(env={}, git_url_github="https://oauth2:glpat-token@forge/{nope}")
    with pytest.raises(git.CloneURLError) as refused:
        git.clone_url(settings, {"provider_type": "github"})
    assert "bad clone URL template 'https://forge/{nope}'" in str(refused.value)
    assert "glpat-token" not in str(refused.value)


def test_redact_removes_the_whole_user_part_and_nothing_else() -> None:
    assert git.redact("https://u:p@ss@host/o/r.git") == "https://host/o/r.git"
    assert git.redact("https://host/o/r.git?ref=a@b") == "https://host/o/r.git?ref=a@b"
    assert git.redact("file:///srv/git/o@x/r.git") == "file:///srv/git/o@x/r.git"
