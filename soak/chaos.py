"""Chaos: every few seconds SIGKILL a random buildsd process, then restart it the same way."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from soak.cluster import Cluster
from soak.processes import Proc, StartError

INTERVAL_S = (1.5, 4.0)  # between one restart and the next kill
PAUSE_S = (0.3, 1.5)  # how long a killed process stays down


@dataclass
class ChaosLog:
    kills: Counter[str] = field(default_factory=Counter)  # by process kind
    survived: Counter[str] = field(default_factory=Counter)  # restarted and ready again
    failed_restarts: list[str] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)  # restart until ready again
    events: list[str] = field(default_factory=list)


async def restart(proc: Proc) -> None:
    proc.spawn()
    await proc.wait_ready()


async def chaos(
    cluster: Cluster, rng: random.Random, stopping: asyncio.Event, log: ChaosLog
) -> None:
    """Kill one process at a time; the next kill waits until it is back."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            await asyncio.wait_for(stopping.wait(), rng.uniform(*INTERVAL_S))
            return
        except TimeoutError:
            pass
        proc = rng.choice(cluster.procs)
        proc.kill()
        log.kills[proc.kind] += 1
        log.events.append(f"{loop.time() - started:6.1f}s kill {proc.name}")
        await asyncio.sleep(rng.uniform(*PAUSE_S))
        down = loop.time()
        try:
            await restart(proc)
        except StartError as exc:
            log.failed_restarts.append(f"{proc.name}: {exc}")
            continue
        proc.restarts += 1
        log.survived[proc.kind] += 1
        log.restart_s.append(loop.time() - down)


async def revive_all(cluster: Cluster, log: ChaosLog) -> None:
    """Before the checks: every process running again (a failed restart is retried once)."""
    for proc in cluster.procs:
        if proc.process is None or proc.process.poll() is not None or not proc.alive:
            try:
                await restart(proc)
            except StartError as exc:
                log.failed_restarts.append(f"{proc.name} (final restart): {exc}")
