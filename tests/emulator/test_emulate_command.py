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
