"""What `buildsd` says before it starts anything: bad settings stop it before the database is
touched, a port already taken is named, the start-up summary tells where things are."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildsd import clock
from buildsd.cli import main
from buildsd.cli.common import prepare, run_with_services
from buildsd.config import load_settings
from buildsd.services.administration import FIRST_RUN_SECONDS


def _invoke(tmp_path: Path, *args: str, **env: str):
    data = tmp_path / "data"
    return data, CliRunner().invoke(main, ["--data-dir", str(data), *args], env=env)


def test_a_bad_bootstrap_token_stops_it_before_any_migration(tmp_path: Path) -> None:
    data, result = _invoke(tmp_path, "db", "upgrade", BUILDSD_BOOTSTRAP_TOKEN="short")
    assert result.exit_code != 0
    assert "BUILDSD_BOOTSTRAP_TOKEN must be 20 to 256 characters" in result.output
    assert not (data / "buildsd.sqlite3").exists()


def test_a_bad_bootstrap_account_id_stops_it_before_any_migration(tmp_path: Path) -> None:
    data, result = _invoke(tmp_path, "db", "upgrade", BUILDSD_BOOTSTRAP_ACCOUNT_ID="ABC")
    assert result.exit_code != 0
    assert "BUILDSD_BOOTSTRAP_ACCOUNT_ID must be 32 lowercase hex" in result.output
    assert not (data / "buildsd.sqlite3").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BUILDSD_RATE_LIMIT", "-1", "BUILDSD_RATE_LIMIT must be 0 (off) or a positive number"),
        ("BUILDSD_MAX_BODY_BYTES", "1023", "BUILDSD_MAX_BODY_BYTES must be at least 1024"),
        ("BUILDSD_MAX_SCRIPT_BYTES", "1023", "BUILDSD_MAX_SCRIPT_BYTES must be at least 1024"),
        ("BUILDSD_MAX_HEADER_BYTES", "1023", "BUILDSD_MAX_HEADER_BYTES must be at least 1024"),
        (
            "BUILDSD_HEADER_TIMEOUT_SECONDS",
            "0",
            "BUILDSD_HEADER_TIMEOUT_SECONDS must be more than 0",
        ),
        ("BUILDSD_BODY_TIMEOUT_SECONDS", "0", "BUILDSD_BODY_TIMEOUT_SECONDS must be more than 0"),
        (
            "BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS",
            "-1",
            "BUILDSD_SQLITE_LOCK_TIMEOUT_SECONDS must be 0 or more",
        ),
        ("BUILDSD_STRICT", "maybe", "BUILDSD_STRICT: expected true or false, got 'maybe'"),
        ("BUILDSD_DATABASE_URL", "mysql://db/builds", "BUILDSD_DATABASE_URL must start with"),
        ("BUILDSD_SECRET_KEY", "dG9vIHNob3J0", "BUILDSD_SECRET_KEY: the secret key must be 32"),
    ],
)
def test_a_refused_setting_stops_it_naming_the_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    """docs/configuration.md: a value buildsd cannot use stops it before anything starts."""
    data, result = _invoke(tmp_path, "db", "upgrade", **{variable: value})
    assert result.exit_code == 1, result.output
    assert f"Error: {message}" in result.output
    assert not (data / "buildsd.sqlite3").exists()


@pytest.mark.parametrize(("value", "strict"), [("yes", True), ("ON", True), ("off", False)])
def test_a_true_or_false_setting_takes_the_usual_words(value: str, strict: bool) -> None:
    from buildsd.config import load_settings

    assert load_settings(env={"BUILDSD_STRICT": value}).strict is strict


def test_a_worker_without_runner_slots_is_refused(tmp_path: Path) -> None:
    data, result = _invoke(tmp_path, "worker", "--runner-slots", "0")
    assert result.exit_code == 1
    assert "a worker needs BUILDSD_RUNNER_SLOTS of 1 or more" in result.output
    assert not (data / "buildsd.sqlite3").exists()


def test_an_address_not_on_this_machine_is_named(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never one of this machine's addresses.
    data, result = _invoke(tmp_path, "serve", "--host", "192.0.2.1", "--port", "8700")
    assert result.exit_code == 1
    assert "cannot listen on 192.0.2.1:8700: Cannot assign requested address" in result.output
    assert not (data / "buildsd.sqlite3").exists()


def test_a_port_in_use_is_named_not_errno_98(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data, result = _invoke(tmp_path, "serve", "--port", str(port))
    assert result.exit_code != 0
    assert f"127.0.0.1:{port} is already in use" in result.output
    assert "BUILDSD_PORT" in result.output
    assert not (data / "buildsd.sqlite3").exists()


def test_the_start_up_line_says_where_things_are_and_no_password(tmp_path: Path) -> None:
    from buildsd.cli import _summary
    from buildsd.config import load_settings

    settings = load_settings(
        env={},
        data_dir=str(tmp_path / "data"),
        database_url="postgresql://buildsd:hunter2-password@db.internal:5432/builds",
        github_webhook_secret="whsec-value",
        git_url_origin="file:///srv/git/{repo_name}.git",
    )
    line = _summary(settings)
    assert f"data dir {(tmp_path / 'data').resolve()}" in line
    assert "database postgresql://db.internal:5432/builds" in line
    assert "hunter2" not in line and "whsec-value" not in line
    assert "github/gitea (secret set)" in line and "gitlab (no global secret)" in line
    assert "origin file:///srv/git/{repo_name}.git" in line


def test_secrets_generate_prints_a_key_buildsd_accepts(tmp_path: Path) -> None:
    from buildsd import crypto

    first = CliRunner().invoke(main, ["secrets", "generate"])
    second = CliRunner().invoke(main, ["secrets", "generate"])
    assert first.exit_code == 0 and second.exit_code == 0
    key = first.output.strip()
    assert key != second.output.strip()
    assert crypto.load_key(key, tmp_path) == crypto.load_key(key, tmp_path / "elsewhere")
    assert not list(tmp_path.iterdir())  # nothing stored


def test_the_start_up_line_shows_no_credential_of_a_clone_url_or_database(tmp_path: Path) -> None:
    from buildsd.cli import _summary
    from buildsd.config import load_settings

    settings = load_settings(
        env={},
        data_dir=str(tmp_path / "data"),
        # libpq reads a password from the query too; an unencoded @ in one must not cut it short
        database_url="postgresql://buildsd:p@ss-word@db.internal/builds?password=hunter3",
        git_url_gitlab="https://oauth2:glpat-token@gitlab.example/{provider_account_name}/x.git",
    )
    line = _summary(settings)
    assert "database postgresql://db.internal/builds;" in line
    assert "gitlab https://gitlab.example/{provider_account_name}/x.git" in line
    for secret in ("p@ss", "ss-word", "hunter3", "glpat-token", "oauth2"):
        assert secret not in line


async def nothing(services: object) -> None:
    return None


def test_a_process_starting_beside_a_first_run_says_where_the_credentials_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replicas started together on a new database: one makes the first account and prints its
    secrets; the others (serve and worker start this way) name the account and say its secrets
    were shown by another process. An admin command run then says nothing of it."""
    settings = load_settings(env={}, data_dir=str(tmp_path / "data"))
    prepare(settings)
    run_with_services(settings, nothing, err=False, replica=True)
    first = capsys.readouterr().out
    run_with_services(settings, nothing, err=False, replica=True)
    second = capsys.readouterr().out
    assert "first run, created" in first and "API token" in first
    account_id = first.split("account id")[1].split()[0]
    assert f"first run by another process: account id {account_id}" in second
    assert "API token " not in second and "buildsd-" not in second
    _, admin = _invoke(tmp_path, "accounts", "list")
    assert admin.exit_code == 0 and "first run" not in admin.output


def test_a_later_start_says_nothing_of_a_first_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(env={}, data_dir=str(tmp_path / "data"))
    prepare(settings)
    run_with_services(settings, nothing, err=False, replica=True)
    capsys.readouterr()
    clock.advance(FIRST_RUN_SECONDS + 1)
    try:
        run_with_services(settings, nothing, err=False, replica=True)
    finally:
        clock.reset_virtual()
    assert "first run" not in capsys.readouterr().out
