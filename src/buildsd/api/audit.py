"""Recording writes in the audit log: what each write operation names, and how the Endpoint
records it: a draft opened before the service is called (`draft`), written by the service's
own transaction (services/audit.py), else recorded once the operation has answered (`record`).

Recorded: every operation that carries an `Audited` in the route table (every builds:write
operation, and the deploy-hook trigger against the hook's account), after authentication, with
its outcome. Not recorded: requests refused by authentication (no caller, or none allowed on the
account, so no account can be trusted with the entry), requests refused by the rate limiter
before they reach an operation, and reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from buildsd.services import Services
from buildsd.services.audit import AuditEvent
from buildsd.services.identity import Caller

log = logging.getLogger("buildsd.audit")

_MAX_ID = 256  # ids and names come from the path: bounded, and free of NULs PostgreSQL refuses


@dataclass(frozen=True, slots=True)
class Audited:
    """What the audit log records of one write operation."""

    resource_type: str
    # The path parameter holding the resource's id, else the result field that does (creates).
    resource_key: str
    action: str  # Cloudflare's action.type: create, update, delete, upsert, cancel, …
    # The names a body touches (variable keys), never its values: bodies hold secrets.
    names: Callable[[Any], list[str]] | None = None


def variable_keys(body: Any) -> list[str]:
    """The keys a build-variables PATCH sets or deletes (its values may be secrets)."""
    return sorted(body) if isinstance(body, dict) else []


def _clip(value: str) -> str:
    return value.replace("\x00", "")[:_MAX_ID]


def _result_field(result: Any, key: str) -> str | None:
    value = result.get(key) if isinstance(result, dict) else getattr(result, key, None)
    return value if isinstance(value, str) else None


def event(
    *,
    operation_id: str,
    audited: Audited,
    params: Mapping[str, str],
    caller: Caller | None,
    client: str,
    status: int,
    result: Any = None,
    body: Any = None,
    error_code: int | None = None,
) -> AuditEvent:
    """The entry of one write: its resource id from the path, else from the result (creates);
    "" when neither has it yet."""
    details: dict[str, Any] = {
        name: _clip(value) for name, value in params.items() if name != "account_id"
    }
    resource_id = params.get(audited.resource_key)
    if resource_id is None and result is not None:
        resource_id = _result_field(result, audited.resource_key)
    if audited.names is not None and body is not None:
        details["names"] = [_clip(name) for name in audited.names(body)]
    if error_code is not None:
        # The code only: an error's message may quote the input it refused.
        details["error_code"] = error_code
    return AuditEvent(
        account_id=params.get("account_id"),
        operation=operation_id,
        action_type=audited.action,
        resource_type=audited.resource_type,
        resource_id=_clip(resource_id or ""),
        status=status,
        caller=caller,
        ip=_clip(client)[:64],
        details=details,
    )


async def record(services: Services, entry: AuditEvent) -> None:
    """Store one entry after the answer is known; never raises. The write has already happened
    (or failed): an audit failure is logged and the write's answer goes out unchanged."""
    try:
        await services.audit.record(entry)
    except Exception:
        log.exception(
            "could not record %s (status %s) in the audit log", entry.operation, entry.status
        )
