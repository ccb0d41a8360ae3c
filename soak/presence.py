"""Invariant: every acknowledged write is there, read back through the API."""

from __future__ import annotations

from typing import Any

from soak.checks import Check
from soak.client import BUILDS, Api
from soak.ledger import Ledger
from soak.workload import TRIGGER_FIELDS


async def pages(api: Api, op: str, path: str) -> list[Any]:
    items: list[Any] = []
    page = 1
    while True:
        reply = await api.call(op, "GET", f"{path}{'&' if '?' in path else '?'}page={page}")
        if reply is None:
            raise RuntimeError(f"GET {path} failed during the checks")
        body = reply.json()
        items += body["result"]
        if page >= body["result_info"]["total_pages"]:
            return items
        page += 1


async def acknowledged_writes_present(api: Api, ledger: Ledger, builds: dict) -> Check:
    missing: list[str] = []
    counts: dict[str, int] = {}
    for repo, uuids in ledger.connections.items():
        accounts = {body["provider_account_id"] for body in ledger.connection_bodies[repo]}
        for uuid in uuids:
            got = await api.result(
                "verify (read back)", "GET", f"/repos/connections/{uuid}", quiet=(404,)
            )
            if got is None or got["repo_id"] != repo or got["provider_account_id"] not in accounts:
                missing.append(f"connection {uuid} of repo {repo}: {got}")
    counts["connections"] = sum(len(u) for u in ledger.connections.values())

    for trigger_uuid, record in ledger.triggers.items():
        got = await api.result(
            "verify (read back)", "GET", f"/triggers/{trigger_uuid}", quiet=(404,)
        )
        fields = {key: got[key] for key in TRIGGER_FIELDS} if got else None
        if fields != record.fields and fields not in record.candidates:
            missing.append(f"trigger {trigger_uuid}: {fields} ≠ acknowledged {record.fields}")
        path = f"/triggers/{trigger_uuid}/environment_variables"
        variables = await api.result("verify (read back)", "GET", path, quiet=(404,)) or {}
        found = {k: (v["value"], v["is_secret"]) for k, v in variables.items()}
        if found != record.variables and not record.variables_uncertain:
            missing.append(f"variables of {trigger_uuid}: {found} ≠ {record.variables}")
        if found.get("SOAK_SECRET") != (None, True):
            missing.append(
                f"variables of {trigger_uuid}: SOAK_SECRET is {found.get('SOAK_SECRET')}"
            )
    counts["triggers"] = counts["variable sets"] = len(ledger.triggers)

    for build_uuid, build in ledger.builds.items():
        row = builds.get(build_uuid)
        if row is None:
            missing.append(f"build {build_uuid} not stored")
        elif any(answer != row[1] for answer in build.cancels):
            missing.append(f"build {build_uuid}: cancel answered {build.cancels}, now {row[1]}")
    counts["builds"] = len(ledger.builds)
    counts["cancels"] = sum(len(b.cancels) for b in ledger.builds.values())
    for build_uuid in sorted(ledger.builds)[:25]:  # and through the API, for a sample
        if (
            await api.call(
                "verify (read back)", "GET", f"{BUILDS}/builds/{build_uuid}", quiet=(404,)
            )
            is None
        ):
            missing.append(f"build {build_uuid}: GET failed")

    listed = {
        t["build_token_uuid"]
        for t in await pages(api, "verify (read back)", f"{BUILDS}/tokens?per_page=200")
    }
    missing += [f"build token {u} not listed" for u in ledger.tokens if u not in listed]
    counts["build tokens"] = len(ledger.tokens)
    counts["webhook deliveries"] = len(ledger.deliveries)  # checked in the database

    return Check(
        "every acknowledged write present",
        not missing,
        ", ".join(f"{n} {kind}" for kind, n in counts.items()) + f"; {len(missing)} missing",
        missing[:10],
    )


async def logs_readable(api: Api, line_counts: dict[str, int], sample: list[str]) -> Check:
    """Following the cursor through the API yields exactly the stored lines."""
    wrong: list[str] = []
    for build_uuid in sample:
        seen, cursor = 0, ""
        for _ in range(1000):
            query = f"?cursor={cursor}" if cursor else ""
            reply = await api.call(
                "verify (read back)", "GET", f"{BUILDS}/builds/{build_uuid}/logs{query}"
            )
            if reply is None:
                wrong.append(f"{build_uuid}: logs GET failed")
                break
            result = reply.json()["result"]
            seen += len(result["lines"])
            cursor = result["cursor"]
            if not result["truncated"]:
                break
        stored = line_counts.get(build_uuid, 0)
        if seen != stored:
            wrong.append(f"{build_uuid}: {seen} lines through the API, {stored} stored")
    return Check(
        "logs read through the API by cursor match the stored lines",
        not wrong,
        f"{len(sample)} builds paged; {len(wrong)} differ",
        wrong[:10],
    )
