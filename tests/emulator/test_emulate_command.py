"""`buildsd emulate`'s refusals: a taken port, a bad setting; nothing left behind."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildsd.cli import main


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("buildsd-emulate-*")}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BUILDSD_DATA_DIR", "BUILDSD_DATABASE_URL", "BUILDSD_RATE_LIMIT"):
        monkeypatch.delenv(name, raising=False)


def test_a_taken_port_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["emulate", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_a_bad_setting_stops_it_and_removes_its_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _leftovers()
    result = CliRunner().invoke(main, ["emulate", "--rate-limit", "-1"])
    assert result.exit_code == 1 and "BUILDSD_RATE_LIMIT" in result.output
    monkeypatch.setenv("BUILDSD_STRICT", "maybe")
    result = CliRunner().invoke(main, ["emulate"])
    assert result.exit_code == 1 and "BUILDSD_STRICT" in result.output
    assert _leftovers() <= before


def test_a_seed_file_that_does_not_load_stops_it(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"tables": {"nope": []}}')
    result = CliRunner().invoke(main, ["emulate", "--seed", str(seed)])
    assert result.exit_code == 1 and "unknown tables" in result.output
    seed.write_text("not json")
    result = CliRunner().invoke(main, ["emulate", "--seed", str(seed)])
    assert result.exit_code == 1 and "seed" in result.output


def test_a_hand_written_seed_file_that_does_not_load_names_the_pointer(tmp_path: Path) -> None:
    import json

    trigger = {"repo_connection": "1", "build_token": "deploy", "trigger_name": "t"}
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"accounts": [{"triggers": [trigger]}]}))
    result = CliRunner().invoke(main, ["emulate", "--seed", str(seed)])
    assert result.exit_code == 1
    assert "/accounts/0/triggers/0/repo_connection" in result.output
    seed.write_text(json.dumps({"accounts": [{"tokens": [{"value": 1}]}]}))
    result = CliRunner().invoke(main, ["emulate", "--seed", str(seed)])
    assert result.exit_code == 1 and "$.accounts[0].tokens[0].value" in result.output


@pytest.mark.slow
def test_a_seed_file_is_loaded_at_start_up(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    import httpx

    seeded = {"id": "b" * 32, "name": "seeded", "created_on": "2026-01-01T00:00:00.000Z"}
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"tables": {"accounts": [seeded]}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "buildsd", "emulate", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        control = line["control_url"]
        httpx.post(f"{control}/snapshots/now").raise_for_status()
        rows = httpx.get(f"{control}/snapshots/now").json()["result"]["tables"]["accounts"]
        assert seeded in rows and line["account_id"] in {row["id"] for row in rows}
        # The JSON line's token works: the first account was made again beside the seed's.
        auth = {"Authorization": f"Bearer {line['token']}"}
        tokens = httpx.get(
            f"{line['url']}/accounts/{line['account_id']}/builds/tokens", headers=auth
        )
        assert tokens.status_code == 200
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()  # type: ignore[union-attr]
