"""Builds: the record, its trigger (read live), per-Worker counts, and log lines."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from buildsd.conditions import HOOK_BUILT, UNFINISHED
from buildsd.db import Connection, Row
from buildsd.store import outbox, required, triggers
from buildsd.wire import (
    Build,
    BuildTriggerMetadata,
    DeployHookRef,
    Page,
    PullRequest,
    TriggerSnapshot,
    Variable,
)

METADATA = (
    "build_trigger_source",
    "branch",
    "commit_hash",
    "commit_message",
    "author",
    "build_command",
    "deploy_command",
    "root_directory",
    "build_token_uuid",
    "build_token_name",
    "repo_name",
    "provider_account_name",
    "provider_type",
)
COLUMNS = (
    "build_uuid",
    "account_id",
    "trigger_uuid",
    "external_script_id",
    "status",
    "build_outcome",
    "created_on",
    "modified_on",
    "initializing_on",
    "running_on",
    "stopped_on",
    *METADATA,
    "environment_variables",
    "pull_request",
    "deploy_hook_uuid",
    "deploy_hook_name",
    "preview_url",
    "version_id",
    "duration_ms",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM builds "
_variables = msgspec.json.Decoder(dict[str, Variable])
_pull_request = msgspec.json.Decoder(PullRequest)
_encoder = msgspec.json.Encoder()
# Build fields not rendered by the database (json_select): the trigger is read live and each
# distinct one encoded once; the other two are present only when set.
_SPLICED = ("trigger", "deploy_hook", "preview_url")


def to_wire(row: Row, trigger: Row | TriggerSnapshot) -> Build:
    """The build object; `trigger` is its trigger's row, or that row's snapshot already made."""
    if not isinstance(trigger, TriggerSnapshot):
        trigger = triggers.to_snapshot(trigger)
    build = Build(
        build_uuid=row["build_uuid"],
        status=row["status"],
        build_outcome=row["build_outcome"],
        created_on=row["created_on"],
        modified_on=row["modified_on"],
        initializing_on=row["initializing_on"],
        running_on=row["running_on"],
        stopped_on=row["stopped_on"],
        build_trigger_metadata=BuildTriggerMetadata(
            **{name: row[name] for name in METADATA},
            environment_variables=_variables.decode(row["environment_variables"]),
        ),
        trigger=trigger,
        pull_request=_pull_request.decode(row["pull_request"]) if row["pull_request"] else None,
    )
    if row["deploy_hook_name"] is not None:
        build.deploy_hook = DeployHookRef(deploy_hook_name=row["deploy_hook_name"])
    if row["preview_url"] is not None:
        build.preview_url = row["preview_url"]
    return build


async def with_triggers(conn: Connection, rows: list[Row]) -> list[Build]:
    """Build objects for rows, reading and converting each distinct trigger once."""
    found: dict[str, TriggerSnapshot] = {}
    for row in rows:
        if row["trigger_uuid"] not in found:
            trigger = await triggers.get_any(conn, row["trigger_uuid"])
            found[row["trigger_uuid"]] = triggers.to_snapshot(trigger)
    return [to_wire(row, found[row["trigger_uuid"]]) for row in rows]


@functools.cache
def json_select(dialect: str) -> str:
    """A SQL expression rendering a builds row as its Build JSON, less the _SPLICED fields.

    Why: a list page is 50 builds (about 68 KB). Reading each build's ~27 columns into Python
    and building Structs cost three times what the database takes to write the JSON itself,
    and reading that JSON back stored (build_json) costs a fifth of writing it. The keys come
    from the wire Structs, which name the columns (one vocabulary); a test pins that a listed
    build equals the same build read alone, and every test checks build_json is current.
    """
    sqlite = dialect == "sqlite"
    obj = "json_object" if sqlite else "json_build_object"

    def stored_json(column: str) -> str:  # a column holding JSON text, embedded as JSON
        return f"json({column})" if sqlite else f"{column}::json"

    def pairs(struct: type[msgspec.Struct], nested: dict[str, str]) -> str:
        return ", ".join(
            f"'{name}', {nested.get(name, name)}"
            for name in struct.__struct_fields__
            if name not in _SPLICED
        )

    metadata = pairs(
        BuildTriggerMetadata, {"environment_variables": stored_json("environment_variables")}
    )
    nested = {
        "build_trigger_metadata": f"{obj}({metadata})",
        "pull_request": stored_json("pull_request"),
    }
    rendered = f"{obj}({pairs(Build, nested)})"
    return rendered if sqlite else f"{rendered}::text"  # as text: psycopg would parse json


def render_json(row: Row) -> str:
    """What json_select makes of `row`, made in Python for a row about to be inserted."""
    metadata = {name: row[name] for name in METADATA}
    metadata["environment_variables"] = msgspec.Raw(row["environment_variables"].encode())
    build: dict[str, Any] = {
        name: row[name] for name in Build.__struct_fields__ if name in row and name not in _SPLICED
    }
    build["build_trigger_metadata"] = metadata
    if row["pull_request"] is not None:
        build["pull_request"] = msgspec.Raw(row["pull_request"].encode())
    return _encoder.encode(build).decode()


async def rerender(conn: Connection, build_uuid: str) -> None:
    """build_json anew, after a change to what the wire shows (every UPDATE of it but leases)."""
    await conn.run(
        f"UPDATE builds SET build_json = {json_select(conn.dialect)} WHERE build_uuid = :uuid",
        {"uuid": build_uuid},
    )


async def page_by_worker(
    conn: Connection, account_id: str, tag: str, page: Page
) -> tuple[msgspec.Raw, int, int]:
    """Newest first: the page as one JSON array of builds (json_select, each with its trigger),
    how many builds it holds, and how many the Worker has."""
    total = await _worker_count(conn, account_id, tag)
    rows = await conn.all(
        # Rows stored before migration 0009 have no build_json yet: rendered here instead.
        f"SELECT COALESCE(build_json, {json_select(conn.dialect)}) AS build_json, "
        "trigger_uuid, deploy_hook_name, preview_url FROM builds "
        "WHERE account_id = :account_id AND external_script_id = :tag "
        "ORDER BY created_on DESC, seq DESC LIMIT :limit OFFSET :offset",
        {"account_id": account_id, "tag": tag, "limit": page.per_page, "offset": page.offset},
    )
    snapshots: dict[str, str] = {}
    parts = ["["]
    for row in rows:
        trigger_uuid = row["trigger_uuid"]
        if trigger_uuid not in snapshots:
            trigger = triggers.to_snapshot(await triggers.get_any(conn, trigger_uuid))
            snapshots[trigger_uuid] = _encoder.encode(trigger).decode()
        if len(parts) > 1:
            parts.append(",")
        parts += [row["build_json"][:-1], ',"trigger":', snapshots[trigger_uuid]]
        if row["deploy_hook_name"] is not None:
            hook = DeployHookRef(deploy_hook_name=row["deploy_hook_name"])
            parts += [',"deploy_hook":', _encoder.encode(hook).decode()]
        if row["preview_url"] is not None:
            parts += [',"preview_url":', _encoder.encode(row["preview_url"]).decode()]
        parts.append("}")
    parts.append("]")
    return msgspec.Raw("".join(parts).encode()), len(rows), total


async def _worker_count(conn: Connection, account_id: str, tag: str) -> int:
    """The per-Worker counter, not COUNT(*): a page costs the same at 1k or 10M builds."""
    row = await conn.one(
        "SELECT build_count FROM worker_build_counts "
        "WHERE account_id = :account_id AND external_script_id = :tag",
        {"account_id": account_id, "tag": tag},
    )
    return int(row["build_count"]) if row else 0


async def insert(conn: Connection, values: dict[str, Any]) -> Row:
    """A new build, counted for its Worker in the same transaction; the row as stored."""
    values = {
        **values,
        "environment_variables": msgspec.json.encode(values["environment_variables"]).decode(),
    }
    if values.get("pull_request") is not None:
        values["pull_request"] = msgspec.json.encode(values["pull_request"]).decode()
    row = {**dict.fromkeys(COLUMNS), **values}
    values["build_json"] = render_json(row)
    # Counted first: the counter's row lock orders concurrent inserts, so seq only grows.
    counted = await conn.one(
        "INSERT INTO worker_build_counts (account_id, external_script_id, build_count) "
        "VALUES (:account_id, :tag, 1) ON CONFLICT (account_id, external_script_id) "
        "DO UPDATE SET build_count = worker_build_counts.build_count + 1 RETURNING build_count",
        {"account_id": values["account_id"], "tag": values["external_script_id"]},
    )
    values["seq"] = int(required(counted)["build_count"])
    names = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    await conn.run(f"INSERT INTO builds ({names}) VALUES ({params})", values)
    await outbox.build_changed(conn, values["build_uuid"], values["modified_on"])  # D29
    return row


async def find(conn: Connection, account_id: str, build_uuid: str) -> Row | None:
    return await conn.one(
        _SELECT + "WHERE build_uuid = :uuid AND account_id = :account_id",
        {"uuid": build_uuid, "account_id": account_id},
    )


async def get(conn: Connection, account_id: str, build_uuid: str) -> Row:
    return required(await find(conn, account_id, build_uuid))


async def latest_by_worker(conn: Connection, account_id: str, tag: str) -> Row | None:
    return await conn.one(
        _SELECT + "WHERE account_id = :account_id AND external_script_id = :tag "
        "ORDER BY created_on DESC, seq DESC LIMIT 1",
        {"account_id": account_id, "tag": tag},
    )


async def by_version(conn: Connection, account_id: str, version_id: str) -> Row | None:
    return await conn.one(
        _SELECT + "WHERE account_id = :account_id AND version_id = :version_id "
        "ORDER BY created_on DESC, seq DESC LIMIT 1",
        {"account_id": account_id, "version_id": version_id},
    )


async def stop(
    conn: Connection, build_uuid: str, *, outcome: str, now: str, duration_ms: int | None
) -> bool:
    """Stop an unfinished build with `outcome`; False when it had already stopped."""
    count = await conn.run(
        "UPDATE builds SET status = 'stopped', build_outcome = :outcome, stopped_on = :now, "
        "modified_on = :now, duration_ms = :duration_ms "
        "WHERE build_uuid = :uuid AND status != 'stopped'",
        {"uuid": build_uuid, "outcome": outcome, "now": now, "duration_ms": duration_ms},
    )
    if count:
        await rerender(conn, build_uuid)
        await outbox.build_changed(conn, build_uuid, now)  # D29, whoever stops it
    return count > 0


async def unfinished_of_trigger(conn: Connection, trigger_uuid: str) -> list[Row]:
    return await conn.all(
        _SELECT + f"WHERE trigger_uuid = :uuid AND {UNFINISHED}",
        {"uuid": trigger_uuid},
    )


async def queued_for_branch(conn: Connection, trigger_uuid: str, branch: str) -> Row | None:
    return await conn.one(
        _SELECT + f"WHERE trigger_uuid = :uuid AND {UNFINISHED} AND branch = :branch "
        "AND status = 'queued' "
        # By seq alone (the order of creation): ordered by created_on first, the planner
        # prefers a Preview's builds index (0015) that avoids the sort to the small partial one.
        "ORDER BY seq DESC LIMIT 1",
        {"uuid": trigger_uuid, "branch": branch},
    )


async def minutes_used_since(conn: Connection, account_id: str, since: str) -> float:
    row = await conn.one(
        "SELECT COALESCE(SUM(duration_ms), 0) AS ms FROM builds "
        "WHERE account_id = :account_id AND stopped_on >= :since",
        {"account_id": account_id, "since": since},
    )
    return int(row["ms"]) / 60_000 if row else 0.0


async def hook_builds_since(
    conn: Connection, account_id: str, since: str, tag: str | None = None
) -> int:
    """Builds started by deploy hooks since `since`, for the account or one of its Workers."""
    sql = (
        "SELECT COUNT(*) AS n FROM builds WHERE account_id = :account_id "
        f"AND {HOOK_BUILT} AND created_on >= :since"
    )
    params = {"account_id": account_id, "since": since}
    if tag is not None:
        sql += " AND external_script_id = :tag"
        params["tag"] = tag
    row = await conn.one(sql, params)
    return int(row["n"]) if row else 0


async def log_lines(conn: Connection, build_uuid: str, after_seq: int, limit: int) -> list[Row]:
    return await conn.all(
        "SELECT seq, ts, line FROM build_log_lines WHERE build_uuid = :uuid AND seq > :after "
        "ORDER BY seq LIMIT :limit",
        {"uuid": build_uuid, "after": after_seq, "limit": limit},
    )
