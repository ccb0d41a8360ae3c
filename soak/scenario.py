"""One soak run on one database: start the cluster, load it, kill it, let it settle, check."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

from soak import checks, presence
from soak.chaos import ChaosLog, chaos, revive_all
from soak.checks import Check
from soak.client import Api, Stats
from soak.cluster import LEASE_SECONDS, Cluster, cluster
from soak.db import query
from soak.ledger import Ledger
from soak.tasks import client, poller
from soak.workload import Workload

DRAIN_CAP_S = 120.0


@dataclass
class RunResult:
    backend: str
    duration_s: float = 0.0
    processes: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    chaos: ChaosLog = field(default_factory=ChaosLog)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settle_s: float = 0.0
    webhooks: bool = False

    @property
    def held(self) -> bool:
        return all(check.held for check in self.checks)


def describe(cluster: Cluster) -> list[str]:
    described = []
    for proc in cluster.procs:
        slots = int(proc.env["BUILDSD_RUNNER_SLOTS"])
        what = "API only" if slots == 0 else f"runner with {slots} slots"
        if proc.kind == "serve":
            what = f"`buildsd serve` on port {proc.port}, " + what
        else:
            what = "`buildsd worker`, " + what
        described.append(f"{proc.name}: {what}")
    return described


async def settle(cluster: Cluster) -> float:
    """Wait past a lease (lapsed builds get terminated), then until nothing is in flight."""
    started = time.monotonic()
    await asyncio.sleep(2 * LEASE_SECONDS + 1)
    while time.monotonic() - started < DRAIN_CAP_S:
        busy = query(
            cluster,
            "SELECT COUNT(*) FROM builds WHERE status IN ('queued', 'initializing', 'running')",
        )
        pending = query(
            cluster, "SELECT COUNT(*) FROM webhook_deliveries WHERE processed_on IS NULL"
        )
        if busy[0][0] == 0 and pending[0][0] == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def log_errors(cluster: Cluster) -> list[str]:
    """Error lines the processes logged (a killed process logs none; a restarted one may)."""
    found: Counter[str] = Counter()
    for proc in cluster.procs:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    found[f"{proc.name}: {line[:160]}"] += 1
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
                exception = str(entry.get("exception", "")).strip().splitlines()
                last = f" ({exception[-1][:160]})" if exception else ""
                found[f"{proc.kind}: {entry.get('message', '')[:160]}{last}"] += 1
    return [f"{n}× {message}" for message, n in found.most_common(10)]


async def run(
    backend: str, *, duration: float, clients: int, seed: int, max_requests: int, keep: bool
) -> RunResult:
    result = RunResult(backend)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    async with cluster(backend, keep) as made:
        result.processes = describe(made)
        ledger = Ledger()
        api = Api(made, result.stats, ledger.secrets)
        secret_value = "soakvar" + secrets.token_hex(12)
        ledger.secrets.append(secret_value)
        cap = max(4, 2 * made.runner_slots())
        work = Workload(api, made, ledger, rng, secret_value, max_requests, cap)
        background: list[asyncio.Task[None]] = []
        try:
            await work.setup()
            result.webhooks = ledger.webhooks
            stopping = asyncio.Event()
            began = loop.time()
            background += [
                asyncio.create_task(chaos(made, rng, stopping, result.chaos)),
                asyncio.create_task(poller(work, stopping)),
            ]
            await asyncio.gather(*(client(work, i, began + duration) for i in range(clients)))
            result.duration_s = loop.time() - began
            stopping.set()
            await asyncio.gather(*background)
            await revive_all(made, result.chaos)
            result.settle_s = await settle(made)
            result.checks, result.outcomes = await verify(made, api, ledger, result)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await api.close()
        result.notes += [f"server log: {line}" for line in log_errors(made)]
    kinds = Counter(
        u.split(" → ")[0].split(" ")[0] + " → " + u.split(" → ")[-1][:200]
        for u in result.stats.unexpected
    )
    result.notes += [f"unexpected 4xx: {n}× {what}" for what, n in kinds.most_common(5)]
    if result.stats.abandoned:
        result.notes.append(f"requests given up: {dict(result.stats.abandoned)}")
    return result


async def verify(
    made: Cluster, api: Api, ledger: Ledger, result: RunResult
) -> tuple[list[Check], Counter[str]]:
    builds = checks.builds_table(made)
    settled, outcomes = checks.every_build_settled(builds)
    gapless, line_counts = checks.logs_gapless(made)
    sample = sorted(line_counts)[:20]
    found = [
        checks.one_connection_per_repository(made, ledger),
        checks.no_build_started_twice(made, builds, result.notes),
        settled,
        await presence.acknowledged_writes_present(api, ledger, builds),
        gapless,
        await presence.logs_readable(api, line_counts, sample),
        checks.no_secret_shown(made, ledger, result.stats),
    ]
    if ledger.webhooks:
        found.append(checks.deliveries_matched_once(made, ledger))
    found.append(checks.no_server_error(result.stats))
    return found, outcomes
