"""Run wrk with bench/scenario.lua and parse its report into a WrkResult."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("scenario.lua")

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_RESULT = re.compile(r"^BENCH-RESULT (.*)$", re.M)
_FIRST_BAD = re.compile(r"^BENCH-FIRST-BAD (.*)$", re.M)


class WrkError(RuntimeError):
    """wrk failed to run or printed something we cannot read."""


@dataclass
class WrkResult:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non200: int
    socket_errors: int
    first_bad: str = ""
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    lua: dict[str, int] = field(default_factory=dict)
    output: str = ""

    @property
    def errors(self) -> int:
        return self.non200 + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed: apt-get install -y wrk (or run `make bench`)")
    return path


def run(
    url: str,
    *,
    method: str,
    token: str | None,
    repos: int,
    duration: float,
    connections: int,
    threads: int,
    body: str | None = None,
    content_type: str = "application/json",
) -> WrkResult:
    """One wrk run against url (path included) and its parsed report; a body "@FILE" is the
    bytes of FILE."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    base = f"{parts.scheme}://{parts.netloc}"
    command = [
        find_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(SCRIPT),
        base,
        "--",
        method,
        path,
        token or "-",
        str(repos),
        body or "-",
        content_type,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}:\n{output}")
    return parse(output)


def parse(output: str) -> WrkResult:
    """Read wrk's --latency report and the BENCH-RESULT line printed by scenario.lua."""
    rps = _RPS.search(output)
    lua_line = _RESULT.search(output)
    if rps is None or lua_line is None:
        raise WrkError(f"could not read wrk's report:\n{output}")
    lua = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lua_line.group(1))}
    percentiles = {
        f"p{pct}": float(value) * _UNIT_MS[unit] for pct, value, unit in _LATENCY.findall(output)
    }
    if "p50" not in percentiles or "p99" not in percentiles:
        # Should not happen with --latency; the Lua figures are exact, in microseconds.
        percentiles.setdefault("p50", lua["p50_us"] / 1000)
        percentiles.setdefault("p99", lua["p99_us"] / 1000)
    socket = _SOCKET.search(output)
    socket_errors = sum(int(n) for n in socket.groups()) if socket else 0
    non2xx = _NON2XX.search(output)
    # Our Lua counts every non-200; wrk itself counts only >= 400. Take the larger.
    non200 = max(lua.get("non200", 0), int(non2xx.group(1)) if non2xx else 0)
    first_bad = _FIRST_BAD.search(output)
    return WrkResult(
        requests=lua["requests"],
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles["p50"],
        p99_ms=percentiles["p99"],
        non200=non200,
        socket_errors=socket_errors,
        first_bad=first_bad.group(1) if first_bad else "",
        percentiles_ms=percentiles,
        lua=lua,
        output=output,
    )
