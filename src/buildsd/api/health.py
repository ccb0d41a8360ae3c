"""Liveness and readiness, outside /client/v4."""

from __future__ import annotations

from buildsd.api.endpoint import Call


async def healthz(call: Call) -> dict[str, str]:
    return {"status": "ok"}


async def readyz(call: Call) -> dict[str, str]:
    return await call.services.health.ready()
