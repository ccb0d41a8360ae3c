"""What the build sandbox costs: a trivial build, POST → seen stopped, with and without bwrap."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import builds
from bench.client import Client
from bench.servers import Server, ServerError

BUILDS = 40  # per kind, interleaved
WARMUP = 3
TAG = "c0ffee00c0ffee00c0ffee00c0ffee07"
DEPLOY = "echo deployed"
BAR_MS = 30.0


def bare_build(workdir: Path, n: int) -> float:
    """What a trivial build is at the least: `git clone` of the repository, `sh -c` the command."""
    dest = workdir / "bare" / str(n)
    bare = workdir / "git" / builds.GIT_OWNER / f"{builds.GIT_REPO}.git"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    started = time.perf_counter()
    for argv in (
        ["git", "clone", "--quiet", "--depth", "1", "--branch=main", f"file://{bare}", str(dest)],
        ["sh", "-c", DEPLOY],
    ):
        done = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, check=False)
        if done.returncode != 0:
            raise ServerError(f"{argv[0]}: {done.stderr.decode(errors='replace').strip()}")
    elapsed = (time.perf_counter() - started) * 1000
    shutil.rmtree(dest)
    return elapsed


def one_build(client: Client, trigger_uuid: str) -> float:
    """ms from sending the POST to the first poll that reads `stopped`; the build must succeed."""
    started = time.perf_counter()
    path = f"/triggers/{trigger_uuid}/builds"
    build_uuid = client.result("POST", path, {"branch": "main"})["build_uuid"]
    seen: dict[str, float] = {}
    build = client.wait_build(build_uuid, "stopped", every=0.002, timeout=60, seen=seen)
    if build["build_outcome"] != "success":
        _, logs = client.call("GET", f"/builds/{build_uuid}/logs")
        lines = [text for _, text in (logs or {}).get("result", {}).get("lines", [])][-5:]
        raise ServerError(f"build {build_uuid} ended {build['build_outcome']}: {lines}")
    return (seen["stopped"] - started) * 1000


def measure(sandboxed: Server, unsandboxed: Server, workdir: Path) -> dict[str, Any]:
    """BUILDS builds on each server and BUILDS bare ones, interleaved so the machine's other
    work falls on all three alike; WARMUP rounds first, not counted."""
    samples: dict[str, list[float]] = {"sandboxed": [], "unsandboxed": [], "bare": []}
    with Client(sandboxed) as a, Client(unsandboxed) as b:
        triggers = {
            "sandboxed": builds.Setup(a).trigger(TAG, ""),
            "unsandboxed": builds.Setup(b).trigger(TAG, ""),
        }
        _deploy(a, triggers["sandboxed"])
        _deploy(b, triggers["unsandboxed"])
        for n in range(WARMUP + BUILDS):
            round_ = {
                "sandboxed": one_build(a, triggers["sandboxed"]),
                "unsandboxed": one_build(b, triggers["unsandboxed"]),
                "bare": bare_build(workdir, n),
            }
            if n >= WARMUP:
                for kind, ms in round_.items():
                    samples[kind].append(ms)
    medians = {kind: statistics.median(values) for kind, values in samples.items()}
    return {
        "builds": BUILDS,
        "warmup": WARMUP,
        "errors": 0,
        **{f"{kind}_p50_ms": round(ms, 2) for kind, ms in medians.items()},
        **{
            f"{kind}_p90_ms": round(statistics.quantiles(values, n=10)[-1], 2)
            for kind, values in samples.items()
        },
        "sandbox_overhead_ms": round(medians["sandboxed"] - medians["unsandboxed"], 2),
        "samples_ms": {kind: [round(v, 2) for v in values] for kind, values in samples.items()},
    }


def _deploy(client: Client, trigger_uuid: str) -> None:
    """Setup.trigger deploys `true`; this scenario's trivial build echoes."""
    client.result("PATCH", f"/triggers/{trigger_uuid}", {"deploy_command": DEPLOY})
