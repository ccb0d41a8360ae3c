"""The control calls under /_buildsd/: reset, accounts, clock, faults, journal, simulate,
snapshots; each answers in Cloudflare's envelope (docs/testing.md)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

import msgspec

from buildsd import clock
from buildsd.errors import BuildsError, InvalidQueryParameter, InvalidRequestBody, NoRoute
from buildsd.services import Services
from buildsd.services.emulation import Fault, Seed, Simulation
from buildsd.services.seeding import pointer_of

PREFIX = "/_buildsd/"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NewAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = ""
    read_token: bool = False


class ClockChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    freeze_at: str | None = None  # RFC 3339; freezes there
    frozen: bool | None = None  # true freezes now, false lets it run again
    advance_seconds: float = 0.0
    reset: bool = False  # back to the system clock


class Request(msgspec.Struct):
    method: str
    parts: list[str]  # the path after /_buildsd/, split at "/"
    query: dict[str, list[str]]
    body: bytes


Handler = Callable[[Services, Request], Awaitable[tuple[int, Any]]]


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequestBody(f"Invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestBody("Invalid request body: not JSON") from exc


def _account_param(request: Request) -> str | None:
    values = request.query.get("account_id")
    if not values:
        return None
    if not _HEX32.match(values[0]):
        raise InvalidQueryParameter("account_id must be 32 lowercase hex characters")
    return values[0]


def _clock_state() -> dict[str, Any]:
    return {"now": clock.now(), "epoch_ms": clock.epoch_ms(), "frozen": clock.is_frozen()}


async def reset(services: Services, request: Request) -> tuple[int, Any]:
    account_id = _account_param(request)
    took = await services.emulation.reset(account_id)
    return 200, {"account_id": account_id, "milliseconds": round(took, 3)}


async def accounts(services: Services, request: Request) -> tuple[int, Any]:
    wanted = _decode(request.body, NewAccount)
    return 200, await services.emulation.new_account(wanted.name, wanted.read_token)


async def get_clock(services: Services, request: Request) -> tuple[int, Any]:
    return 200, _clock_state()


async def set_clock(services: Services, request: Request) -> tuple[int, Any]:
    change = _decode(request.body, ClockChange)
    if change.reset:
        clock.reset_virtual()
    if change.freeze_at is not None:
        try:
            clock.freeze(int(clock.parse(change.freeze_at).timestamp() * 1000))
        except ValueError as exc:
            raise InvalidRequestBody("freeze_at must be an RFC 3339 time") from exc
    elif change.frozen is True:
        clock.freeze(clock.epoch_ms())
    elif change.frozen is False:
        clock.freeze(None)
    if change.advance_seconds < 0:
        raise InvalidRequestBody("advance_seconds must be 0 or more: time only goes on")
    clock.advance(change.advance_seconds)
    return 200, _clock_state()


async def add_fault(services: Services, request: Request) -> tuple[int, Any]:
    return 200, services.emulation.add_fault(_decode(request.body, Fault))


async def list_faults(services: Services, request: Request) -> tuple[int, Any]:
    return 200, services.emulation.faults()


async def delete_faults(services: Services, request: Request) -> tuple[int, Any]:
    services.emulation.delete_fault(request.parts[1] if len(request.parts) > 1 else None)
    return 200, None


async def journal(services: Services, request: Request) -> tuple[int, Any]:
    def one(name: str) -> str | None:
        values = request.query.get(name)
        return values[0] if values else None

    entries = services.emulation.requests(one("method"), one("path"), _account_param(request))
    return 200, [asdict(entry) for entry in entries]


async def simulate(services: Services, request: Request) -> tuple[int, Any]:
    return 200, services.emulation.simulate(_decode(request.body, Simulation))


async def advance_build(services: Services, request: Request) -> tuple[int, Any]:
    services.emulation.release(request.parts[1])
    return 200, {"build_uuid": request.parts[1]}


async def snapshot(services: Services, request: Request) -> tuple[int, Any]:
    name = _snapshot_name(request)
    return 200, {"name": name, "rows": await services.emulation.snapshot(name)}


async def restore(services: Services, request: Request) -> tuple[int, Any]:
    name = _snapshot_name(request)
    return 200, {"name": name, "rows": await services.emulation.restore(name)}


async def export(services: Services, request: Request) -> tuple[int, Any]:
    return 200, services.emulation.exported(_snapshot_name(request))


async def seed(services: Services, request: Request) -> tuple[int, Any]:
    try:
        document = msgspec.json.decode(request.body or b"{}", type=Seed)
    except msgspec.ValidationError as exc:  # the pointer names the field (D9)
        raise InvalidRequestBody(f"Invalid request body: {exc}", pointer=pointer_of(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestBody("Invalid request body: not JSON") from exc
    return 200, {"rows": await services.emulation.seed(document)}


def _snapshot_name(request: Request) -> str:
    name = request.parts[1]
    if not _NAME.match(name):
        raise InvalidRequestBody("a snapshot name is 1 to 64 of A-Z a-z 0-9 _ . -")
    return name


# (method, the path's first segment, number of segments, last segment or None) → handler
_ROUTES: dict[tuple[str, str, int, str | None], Handler] = {
    ("POST", "reset", 1, None): reset,
    ("POST", "accounts", 1, None): accounts,
    ("GET", "clock", 1, None): get_clock,
    ("POST", "clock", 1, None): set_clock,
    ("POST", "faults", 1, None): add_fault,
    ("GET", "faults", 1, None): list_faults,
    ("DELETE", "faults", 1, None): delete_faults,
    ("DELETE", "faults", 2, None): delete_faults,
    ("GET", "requests", 1, None): journal,
    ("POST", "simulate", 1, None): simulate,
    ("POST", "builds", 3, "advance"): advance_build,
    ("POST", "snapshots", 2, None): snapshot,
    ("GET", "snapshots", 2, None): export,
    ("POST", "seed", 1, None): seed,
    ("POST", "snapshots", 3, "restore"): restore,
}


async def dispatch(
    services: Services, method: str, path: str, query: str, body: bytes
) -> tuple[int, Any]:
    """(status, result) of one control call; raises BuildsError for a bad one."""
    parts = [part for part in path[len(PREFIX) :].split("/") if part]
    if not parts:
        raise NoRoute()
    last = parts[-1] if len(parts) == 3 else None
    handler = _ROUTES.get((method, parts[0], len(parts), last))
    if handler is None:
        raise NoRoute()
    request = Request(method, parts, parse_qs(query), body)
    return await handler(services, request)


__all__ = ["PREFIX", "BuildsError", "dispatch"]
