"""`buildsd forge set|show|unset`: the token is stored encrypted and never printed."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from buildsd.cli import main
from tests.conftest import ACCOUNT, TOKEN
from tests.forges.conftest import FORGE_TOKEN, pem_of


def _run(tmp_path: Path, *args: str, input: str | None = None, **env: str):
    env = {"BUILDSD_BOOTSTRAP_ACCOUNT_ID": ACCOUNT, "BUILDSD_BOOTSTRAP_TOKEN": TOKEN, **env}
    argv = ["--data-dir", str(tmp_path / "data"), *args]
    return CliRunner().invoke(main, argv, env=env, input=input)


def test_set_show_unset(tmp_path: Path) -> None:
    account = ["--account", ACCOUNT]
    done = _run(
        tmp_path,
        "forge",
        "set",
        *account,
        "--forge",
        "gitea",
        "--api-url",
        "https://git.example/api/v1/",
        BUILDSD_FORGE_TOKEN=FORGE_TOKEN,
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip().endswith("gitea updates for the account's github connections")
    done = _run(tmp_path, "forge", "set", *account, "--forge", "gitlab", input=FORGE_TOKEN + "\n")
    assert done.exit_code == 0, done.output
    shown = _run(tmp_path, "forge", "show", *account)
    lines = shown.output.strip().splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["github", "gitea", "https://git.example/api/v1"],
        ["gitlab", "gitlab", "https://gitlab.com/api/v4"],
    ]
    assert FORGE_TOKEN not in shown.output and FORGE_TOKEN not in done.output
    db = (tmp_path / "data" / "buildsd.sqlite3").read_bytes()
    assert FORGE_TOKEN.encode() not in db  # only its ciphertext
    assert _run(tmp_path, "forge", "unset", *account, "--forge", "gitea").exit_code == 0
    again = _run(tmp_path, "forge", "unset", *account, "--forge", "gitea")
    assert again.exit_code != 0 and "no gitea token" in again.output
    assert _run(tmp_path, "forge", "show", *account).output.count("\n") == 1


def test_bad_input_is_refused(tmp_path: Path) -> None:
    gitea = ["forge", "set", "--account", ACCOUNT, "--forge", "gitea"]
    done = _run(tmp_path, *gitea, BUILDSD_FORGE_TOKEN=FORGE_TOKEN)
    assert done.exit_code != 0 and "Gitea has no default" in done.output
    done = _run(tmp_path, *gitea, "--api-url", "file:///etc", BUILDSD_FORGE_TOKEN=FORGE_TOKEN)
    assert done.exit_code != 0 and "http(s)" in done.output
    done = _run(tmp_path, *gitea, "--api-url", "https://g.example", BUILDSD_FORGE_TOKEN=" ")
    assert done.exit_code != 0 and "must not be empty" in done.output
    done = _run(
        tmp_path,
        "forge",
        "set",
        "--account",
        "ab" * 16,
        "--forge",
        "github",
        BUILDSD_FORGE_TOKEN=FORGE_TOKEN,
    )
    assert done.exit_code != 0 and "no such account" in done.output


def test_a_github_app_from_a_key_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    pem = pem_of(app_key)
    key_file.write_text(pem)
    account = ["--account", ACCOUNT]
    app = ["--app-id", "123456", "--private-key-file", str(key_file)]
    done = _run(tmp_path, "forge", "set", *account, "--forge", "github", *app)
    assert done.exit_code == 0, done.output
    assert "github check runs by App 123456" in done.output
    again = _run(
        tmp_path, "forge", "set", *account, "--forge", "github", *app, "--installation-id", "42"
    )
    assert again.exit_code == 0, again.output
    shown = _run(tmp_path, "forge", "show", *account)
    assert "app 123456 installation 42" in shown.output
    secret_line = pem.splitlines()[5]
    for output in (done.output, again.output, shown.output):
        assert secret_line not in output
    assert secret_line.encode() not in (tmp_path / "data" / "buildsd.sqlite3").read_bytes()
    for args, said in (
        (["--forge", "gitlab", *app], "--app-id is for --forge github"),
        (["--forge", "github", "--app-id", "1"], "both --app-id and --private-key-file"),
    ):
        refused = _run(tmp_path, "forge", "set", *account, *args)
        assert refused.exit_code != 0 and said in refused.output
