"""What the benchmark ran on: CPU, memory, Python and package versions, wrk, commit."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import wrk

ROOT = Path(__file__).resolve().parent.parent


def _read(path: str, key: str) -> str:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _command(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else "?"
    )


def machine() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    mem_kb = _read("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _read("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb.isdigit() else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in ("starlette", "msgspec", "uvicorn", "uvloop", "httptools", "psycopg")
        },
        "sqlite": sqlite3.sqlite_version,
        "wrk": _command([wrk.find_wrk(), "--version"]).split(" [")[0],
        "commit": _command(["git", "rev-parse", "--short", "HEAD"]),
    }


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds used by our finished (waited-for) children, e.g. every wrk run so far."""
    times = os.times()
    return times.children_user + times.children_system


def load_cpu_seconds() -> float:
    """CPU seconds of the load side: this process (a polling client) and its finished children
    (every wrk run so far)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
