"""The emulator's state and controls (D26, D27): simulated-build plans, faults, the request
journal, resets, isolated accounts and snapshots. Only `buildsd emulate` (or
BUILDSD_CONTROL_API=true) reaches them; in `serve` this holds nothing and matches nothing."""

from __future__ import annotations

import asyncio
import fnmatch
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from buildsd import clock
from buildsd.db import Database, IntegrityError
from buildsd.errors import InvalidRequestBody, NotFound
from buildsd.services.administration import Administration
from buildsd.services.grants import Grants
from buildsd.services.identity import Identity
from buildsd.services.seeding import HandSeed, SeedAccount, Seeder, check
from buildsd.store import emulation

OUTCOMES = ("success", "fail", "timeout")
MODES = ("immediate", "seconds", "polls", "manual")
RUNNER_FAULTS = ("clone", "token", "install", "timeout")
JOURNAL_SIZE = 10_000
# The trigger's variables that steer its simulated builds (they win over the control API's
# defaults for the account: they are the more specific).
OUTCOME_VARIABLE = "BUILDSD_SIMULATE_OUTCOME"
LOG_VARIABLE = "BUILDSD_SIMULATE_LOG"
SECONDS_VARIABLE = "BUILDSD_SIMULATE_SECONDS"
MODE_VARIABLE = "BUILDSD_SIMULATE_MODE"
POLLS_VARIABLE = "BUILDSD_SIMULATE_POLLS"


class Simulation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How simulated builds go: the body of POST /_buildsd/simulate and a build's plan."""

    outcome: str = "success"
    seconds: float = 0.0
    log: list[str] = []
    mode: str | None = None  # None: "seconds" when seconds > 0, else "immediate"
    polls: int = 0
    account_id: str | None = None

    def check(self) -> Simulation:
        if self.outcome not in OUTCOMES:
            raise InvalidRequestBody(f"outcome must be one of {', '.join(OUTCOMES)}")
        if self.mode is not None and self.mode not in MODES:
            raise InvalidRequestBody(f"mode must be one of {', '.join(MODES)}")
        if self.seconds < 0 or self.polls < 0:
            raise InvalidRequestBody("seconds and polls must be 0 or more")
        if self.mode is None:
            self.mode = "polls" if self.polls else "seconds" if self.seconds else "immediate"
        return self


class Seed(msgspec.Struct, forbid_unknown_fields=True):
    """A seed document: every table's rows, as GET /_buildsd/snapshots/{name} exports them, or
    accounts written by hand in the API's shapes (services/seeding.py); one of the two."""

    tables: dict[str, list[dict[str, str | int | float | bool | None]]] | None = None
    accounts: list[SeedAccount] | None = None


class Fault(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rule of POST /_buildsd/faults: which calls it matches and what it does to them."""

    id: str = ""
    method: str = "*"
    path: str = "*"  # a glob on the request path, e.g. */builds/triggers/*
    operation: str | None = None  # or an operation id, e.g. createTrigger
    account_id: str | None = None
    status: int | None = None  # answer this status with Cloudflare's error body
    code: int = 10000
    message: str = "Simulated fault"
    retry_after: int | None = None
    latency_ms: int = 0
    drop: bool = False  # close the connection without an answer
    nth: int | None = None  # only the Nth matching call (1-based)
    probability: float | None = None  # each matching call with this probability …
    seed: int = 0  # … drawn from a generator seeded with this
    runner: str | None = None  # a simulated build of the account fails this way
    matched: int = 0

    def check(self) -> Fault:
        if self.runner is not None and self.runner not in RUNNER_FAULTS:
            raise InvalidRequestBody(f"runner must be one of {', '.join(RUNNER_FAULTS)}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise InvalidRequestBody("status must be an error status, 400 to 599")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise InvalidRequestBody("probability must be between 0 and 1")
        if self.status is None and not (self.drop or self.latency_ms or self.runner):
            raise InvalidRequestBody("a fault needs status, latency_ms, drop or runner")
        self.method = self.method.upper()
        return self


@dataclass
class _Rule:
    fault: Fault
    random: random.Random
    calls: int = 0


@dataclass
class Entry:
    """One API call in the journal; `body` already masked."""

    method: str
    path: str
    query: str
    body: Any
    status: int
    time: str
    account_id: str | None


@dataclass
class Emulation:
    db: Database
    identity: Identity  # its caches are dropped by a reset
    admin: Administration
    grants: Grants
    seeder: Seeder | None = None  # hand-written seeds (services/__init__.py sets it)
    defaults: dict[str, Simulation] = field(default_factory=dict)  # account ("" = all) → plan
    rules: list[_Rule] = field(default_factory=list)
    journal: deque[Entry] = field(default_factory=lambda: deque(maxlen=JOURNAL_SIZE))
    polls: dict[str, int] = field(default_factory=dict)
    released: dict[str, asyncio.Event] = field(default_factory=dict)
    snapshots: dict[str, dict[str, list[dict[str, object]]]] = field(default_factory=dict)
    next_id: int = 1
    # Resets and restores hold the gate; simulated builds write only while holding it, and give
    # up when a reset has passed since they began (their rows are gone): no write of theirs
    # can land between a reset's deletes (PostgreSQL runs them side by side).
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    generations: dict[str, int] = field(default_factory=dict)  # account ("" = all) → resets

    def generation(self, account_id: str) -> tuple[int, int]:
        return self.generations.get("", 0), self.generations.get(account_id, 0)

    def _bump(self, account_id: str) -> None:
        self.generations[account_id] = self.generations.get(account_id, 0) + 1

    # --- simulated builds ----------------------------------------------------------------

    def simulate(self, plan: Simulation) -> Simulation:
        self.defaults[plan.account_id or ""] = plan.check()
        return plan

    def plan_for(self, account_id: str, variables: dict[str, tuple[str, bool]]) -> Simulation:
        base = self.defaults.get(account_id) or self.defaults.get("") or Simulation()
        plan = msgspec.structs.replace(base)
        if OUTCOME_VARIABLE in variables:
            plan.outcome = variables[OUTCOME_VARIABLE][0].strip().lower()
        if LOG_VARIABLE in variables:
            plan.log = variables[LOG_VARIABLE][0].splitlines()
        try:
            if SECONDS_VARIABLE in variables:
                plan.seconds, plan.mode = float(variables[SECONDS_VARIABLE][0]), None
            if POLLS_VARIABLE in variables:
                plan.polls, plan.mode = int(variables[POLLS_VARIABLE][0]), None
        except ValueError:
            return Simulation(outcome="invalid")  # the build's log says why (runner/simulate.py)
        if MODE_VARIABLE in variables:
            plan.mode = variables[MODE_VARIABLE][0].strip().lower()
        try:
            return plan.check()
        except InvalidRequestBody:
            return Simulation(outcome="invalid")

    def count_poll(self, build_uuid: str) -> None:
        self.polls[build_uuid] = self.polls.get(build_uuid, 0) + 1
        if len(self.polls) > JOURNAL_SIZE:  # polls of builds long stopped: the oldest go
            del self.polls[next(iter(self.polls))]

    def release(self, build_uuid: str) -> None:
        """Let a `manual` build go on to its end."""
        self.released.setdefault(build_uuid, asyncio.Event()).set()

    def release_event(self, build_uuid: str) -> asyncio.Event:
        return self.released.setdefault(build_uuid, asyncio.Event())

    # --- faults --------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        fault.check()
        fault.id, self.next_id = str(self.next_id), self.next_id + 1
        self.rules.append(_Rule(fault, random.Random(fault.seed)))
        return fault

    def faults(self) -> list[Fault]:
        return [rule.fault for rule in self.rules]

    def delete_fault(self, fault_id: str | None) -> None:
        if fault_id is None:
            self.rules.clear()
            return
        kept = [rule for rule in self.rules if rule.fault.id != fault_id]
        if len(kept) == len(self.rules):
            raise NotFound(f"no fault {fault_id}")
        self.rules = kept

    def match(
        self, method: str, path: str, account_id: str | None, operation: str | None
    ) -> Fault | None:
        """The first HTTP rule this call triggers (counting it), or None."""
        for rule in self.rules:
            fault = rule.fault
            if fault.runner is not None or not _applies(fault, account_id):
                continue
            if fault.method not in ("*", method) or not fnmatch.fnmatchcase(path, fault.path):
                continue
            if fault.operation is not None and fault.operation != operation:
                continue
            if _fires(rule):
                return fault
        return None

    def runner_fault(self, account_id: str) -> str | None:
        for rule in self.rules:
            fault = rule.fault
            if fault.runner is not None and _applies(fault, account_id) and _fires(rule):
                return fault.runner
        return None

    # --- the journal ---------------------------------------------------------------------

    def record(self, entry: Entry) -> None:
        self.journal.append(entry)

    def requests(self, method: str | None, path: str | None, account_id: str | None) -> list[Entry]:
        return [
            e
            for e in self.journal
            if (method is None or e.method == method.upper())
            and (path is None or fnmatch.fnmatchcase(e.path, path))
            and (account_id is None or e.account_id == account_id)
        ]

    # --- state ---------------------------------------------------------------------------

    async def reset(self, account_id: str | None) -> float:
        """Back to the first-run state (one account's resources, or everything); the ms taken."""
        started = time.perf_counter()
        if account_id is None:
            async with self.gate:
                async with self.db.transaction(exclusive=True) as conn:
                    await emulation.empty_all(conn)
                self._bump("")
            self._forget()
            await self.admin.bootstrap()
            clock.reset_virtual()
            self.defaults.clear()
            self.rules.clear()
            self.journal.clear()
            self.polls.clear()
            self.released.clear()
        else:
            if not await self.identity.account_exists(account_id):
                raise NotFound(f"no account {account_id}")
            async with self.gate:
                async with self.db.transaction(exclusive=True) as conn:
                    await emulation.empty_account(conn, account_id)
                self._bump(account_id)
            self.defaults.pop(account_id, None)
            self.rules = [r for r in self.rules if r.fault.account_id != account_id]
            kept = [e for e in self.journal if e.account_id != account_id]
            self.journal = deque(kept, maxlen=JOURNAL_SIZE)
        return (time.perf_counter() - started) * 1000

    def _forget(self) -> None:
        """Every row was replaced: what the services remember of accounts and tokens is gone
        (a token from before a reset is refused at once, not a second later)."""
        self.identity.forget()
        self.grants.forget()

    async def new_account(self, name: str, read_token: bool) -> dict[str, str | None]:
        """An isolated account with a Write token (and a Read one when asked)."""
        account_id = await self.admin.create_account(name or "emulated")
        write = await self.admin.create_token(
            account_id=account_id,
            permissions=["Workers CI Write", "Workers Scripts Write"],
            name="emulator write",
        )
        read = None
        if read_token:
            made = await self.admin.create_token(
                account_id=account_id, permissions=["Workers CI Read"], name="emulator read"
            )
            read = made.value
        return {"account_id": account_id, "token": write.value, "read_token": read}

    async def snapshot(self, name: str) -> int:
        async with self.db.transaction(exclusive=True) as conn:
            rows = await emulation.dump_all(conn)
        self.snapshots[name] = rows
        return sum(len(batch) for batch in rows.values())

    def exported(self, name: str) -> dict[str, Any]:
        rows = self.snapshots.get(name)
        if rows is None:
            raise NotFound(f"no snapshot {name}")
        return {"tables": rows}

    async def seed(self, document: Seed) -> int:
        """Replace every row with the document's, then make sure the emulator's first account
        and token exist; the rows loaded (table form) or the things made (hand-written)."""
        if (document.tables is None) == (document.accounts is None):
            raise InvalidRequestBody("a seed has either tables or accounts", pointer="/tables")
        if document.accounts is not None:
            return await self._seed_by_hand(HandSeed(accounts=document.accounts))
        tables = document.tables or {}
        unknown = set(tables) - emulation.table_names()
        if unknown:
            raise InvalidRequestBody(f"unknown tables in the seed: {', '.join(sorted(unknown))}")
        async with self.gate:
            try:
                async with self.db.transaction(exclusive=True) as conn:
                    await emulation.empty_all(conn)
                    await emulation.load_all(conn, tables)
            except (ValueError, IntegrityError) as exc:
                raise InvalidRequestBody(f"the seed does not load: {exc}") from exc
            self._bump("")
        self._forget()
        await self.admin.bootstrap()
        return sum(len(batch) for batch in tables.values())

    async def _seed_by_hand(self, document: HandSeed) -> int:
        """Checked whole first; applied through the services into the first-run state. What a
        service refuses on the way puts the rows from before the seed back: nothing loads."""
        checked = check(document)
        assert self.seeder is not None
        async with self.gate:
            async with self.db.transaction(exclusive=True) as conn:
                before = await emulation.dump_all(conn)
                await emulation.empty_all(conn)
            self._bump("")
        self._forget()
        await self.admin.bootstrap()
        try:
            return await self.seeder.apply(checked, self.admin.first_account)
        except InvalidRequestBody:
            async with self.gate:
                async with self.db.transaction(exclusive=True) as conn:
                    await emulation.empty_all(conn)
                    await emulation.load_all(conn, before)
                self._bump("")
            self._forget()
            raise

    async def restore(self, name: str) -> int:
        rows = self.snapshots.get(name)
        if rows is None:
            raise NotFound(f"no snapshot {name}")
        async with self.gate:
            async with self.db.transaction(exclusive=True) as conn:
                await emulation.empty_all(conn)
                await emulation.load_all(conn, rows)
            self._bump("")
        self._forget()
        return sum(len(batch) for batch in rows.values())


def _applies(fault: Fault, account_id: str | None) -> bool:
    return fault.account_id is None or fault.account_id == account_id


def _fires(rule: _Rule) -> bool:
    rule.calls += 1
    fault = rule.fault
    if fault.nth is not None and rule.calls != fault.nth:
        return False
    if fault.probability is not None and rule.random.random() >= fault.probability:
        return False
    fault.matched += 1
    return True
