"""The client tasks of a run: each picks writes and reads at random until time or budget ends."""

from __future__ import annotations

import asyncio
import secrets

from soak.ledger import BuildRecord
from soak.workload import HOOK_TAG, MAX_TRIGGERS_PER_TASK, Workload

THINK_S = 0.05  # pause between one task's requests
# action → weight
ACTIONS = {
    "upsert": 10,
    "concurrent upserts": 4,
    "create trigger": 4,
    "patch trigger": 10,
    "set variables": 10,
    "start build": 16,
    "cancel": 4,
    "token": 2,
    "webhook": 6,
    "read": 14,
}


async def client(work: Workload, task: int, until: float) -> None:
    """One client: its own Worker tag and triggers (only it changes them), shared the rest."""
    loop = asyncio.get_running_loop()
    tag = secrets.token_hex(16)
    rng = work.rng
    names, weights = list(ACTIONS), list(ACTIONS.values())
    await work.create_trigger(task, tag)
    while loop.time() < until and work.budget_left():
        mine = [u for u, t in work.ledger.triggers.items() if t.owner == task]
        action = rng.choices(names, weights)[0]
        if action == "upsert":
            await work.upsert_connection(rng.choice(sorted(work.ledger.connections)))
        elif action == "concurrent upserts":
            await work.concurrent_upserts(task)
        elif action == "create trigger" and len(mine) < MAX_TRIGGERS_PER_TASK:
            await work.create_trigger(task, tag)
        elif action == "patch trigger" and mine:
            await work.patch_trigger(rng.choice(mine))
        elif action == "set variables" and mine:
            await work.set_variables(rng.choice(mine))
        elif action == "start build" and mine and work.ledger.unfinished() < work.build_cap:
            await work.start_build(rng.choice(mine))
        elif action == "cancel":
            await work.cancel_build()
        elif action == "token":
            await work.create_token()
        elif action == "webhook" and work.ledger.webhooks:
            if work.ledger.unfinished() < work.build_cap:
                await work.deliver(redeliver=rng.random() < 0.2)
        elif action == "read":
            await read(work)
        await asyncio.sleep(THINK_S)


async def read(work: Workload) -> None:
    """A build, its logs, a trigger, or a list: the reads clients of the API make."""
    rng, ledger, api = work.rng, work.ledger, work.api
    choice = rng.randrange(4)
    if choice < 2 and ledger.builds:
        build_uuid = rng.choice(sorted(ledger.builds))
        if choice == 0:
            await api.result("get build", "GET", f"/builds/{build_uuid}")
        else:
            await api.result("get logs", "GET", f"/builds/{build_uuid}/logs")
    elif choice == 2 and ledger.triggers:
        await api.result("get trigger", "GET", f"/triggers/{rng.choice(sorted(ledger.triggers))}")
    else:
        await api.result("list connections", "GET", "/repos/connections?per_page=20")


async def poller(work: Workload, stopping: asyncio.Event) -> None:
    """Follows unfinished builds (so clients keep the queue short) and finds push builds."""
    api, ledger = work.api, work.ledger
    while not stopping.is_set():
        if ledger.webhooks:
            listed = await api.result(
                "list builds", "GET", f"/workers/{HOOK_TAG}/builds?per_page=50"
            )
            for build in listed or []:
                record = ledger.builds.setdefault(
                    build["build_uuid"],
                    BuildRecord(build["trigger"]["trigger_uuid"], "push_event"),
                )
                record.status = build["status"]
        for build_uuid in [u for u, b in ledger.builds.items() if b.status != "stopped"][:30]:
            got = await api.result("get build", "GET", f"/builds/{build_uuid}")
            if got is not None:
                ledger.builds[build_uuid].status = got["status"]
        await asyncio.sleep(1.0)
