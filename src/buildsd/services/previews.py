"""Worker Previews (issue 13): one Preview per branch, made by its first push or build.

A Worker's Previews base config is a trigger row that matches no branch (`previews_configs`
points at it); each Preview owns a trigger row copied from the base that builds its branch
alone, so its builds run the Preview command, list under the Worker's builds and under the
Preview's, and use the runner unchanged. Neither kind of row is a legacy trigger: the Worker
build config (services/worker_builds.py) leaves them out of its roles.
"""

from __future__ import annotations

from typing import Any

import msgspec

from buildsd import clock
from buildsd.config import Settings
from buildsd.db import Connection, Database, Row
from buildsd.errors import InvalidRequestBody, NoBuildConfiguration
from buildsd.services.builds import Builds
from buildsd.services.triggers import Triggers
from buildsd.store import build_tokens, builds, previews, triggers
from buildsd.wire import (
    Build,
    CreateBuildRequest,
    Page,
    UpdateWorkerBuildSettingsInput,
    VariableInput,
    WorkerBuildSettings,
)
from buildsd.wire_previews import Preview, UpdatePreviewRequest

BASE = "Previews base config"
SCALARS = ("build_command", "deploy_command", "root_directory", "build_caching_enabled")
LISTS = ("path_includes", "path_excludes")


def patterns(row: Row, column: str) -> list[str]:
    return msgspec.json.decode(row[column], type=list[str])


def roles(live: list[Row]) -> tuple[Row, Row | None]:
    """(production, legacy non-production) among a Worker's live triggers, oldest first:
    production builds exactly one branch named without `*` (else it is the oldest), the
    legacy one builds every branch (`branch_includes ["*"]`)."""
    production = next(
        (
            row
            for row in live
            if len(includes := patterns(row, "branch_includes")) == 1 and "*" not in includes[0]
        ),
        live[0],
    )
    legacy = next(
        (
            row
            for row in live
            if row is not production and patterns(row, "branch_includes") == ["*"]
        ),
        None,
    )
    return production, legacy


async def legacy_live(conn: Connection, account_id: str, tag: str) -> list[Row]:
    """The Worker's live triggers that are triggers (not Previews settings), oldest first."""
    mine = await previews.owned(conn, account_id, tag)
    live = await triggers.list_by_worker(conn, account_id, tag)
    return [row for row in live if row["trigger_uuid"] not in mine]


async def retire(conn: Connection, trigger_uuid: str, now: str) -> None:
    """Soft-delete a trigger and cancel its unfinished builds, as deleting a trigger does (D6)."""
    await triggers.soft_delete(conn, trigger_uuid, now)
    for build in await builds.unfinished_of_trigger(conn, trigger_uuid):
        await builds.stop(conn, build["build_uuid"], outcome="cancelled", now=now, duration_ms=None)


async def copy_trigger(
    conn: Connection,
    variables: Triggers,
    source: Row,
    name: str,
    branches: tuple[list[str], list[str]],
    overrides: dict[str, Any] | None = None,
) -> Row:
    """A new trigger row with `source`'s settings and variables (secrets included)."""
    now = clock.now()
    values: dict[str, Any] = {field: source[field] for field in SCALARS}
    values.update({field: patterns(source, field) for field in LISTS})
    values.update(
        trigger_uuid=clock.new_uuid(),
        account_id=source["account_id"],
        external_script_id=source["external_script_id"],
        repo_connection_uuid=source["repo_connection_uuid"],
        build_token_uuid=source["build_token_uuid"],
        trigger_name=name,
        branch_includes=branches[0],
        branch_excludes=branches[1],
        build_caching_enabled=bool(source["build_caching_enabled"]),
        created_on=now,
        modified_on=now,
        deleted_on=None,
    )
    values.update(overrides or {})
    await triggers.insert(conn, values)
    copied: dict[str, VariableInput | None] = {
        key: VariableInput(value=value, is_secret=is_secret)
        for key, (value, is_secret) in (
            await variables.plain_variables(conn, source["trigger_uuid"])
        ).items()
    }
    await variables.write_variables(conn, values["trigger_uuid"], copied)
    return await triggers.get(conn, source["account_id"], values["trigger_uuid"])


async def settings_of(conn: Connection, variables: Triggers, row: Row) -> WorkerBuildSettings:
    return WorkerBuildSettings(
        build_command=row["build_command"],
        deploy_command=row["deploy_command"],
        build_token_uuid=row["build_token_uuid"],
        root_directory=row["root_directory"],
        path_includes=patterns(row, "path_includes"),
        path_excludes=patterns(row, "path_excludes"),
        build_caching_enabled=bool(row["build_caching_enabled"]),
        environment_variables=await variables.read_variables(conn, row["trigger_uuid"]),
    )


def changes_of(settings: UpdateWorkerBuildSettingsInput, pointer: str) -> dict[str, Any]:
    """The fields a partial settings object sets (at least one, as the schema requires)."""
    given = {
        name: value
        for name, value in msgspec.structs.asdict(settings).items()
        if value is not msgspec.UNSET
    }
    if not given:
        raise InvalidRequestBody("give at least one setting", pointer=pointer)
    return given


async def apply_settings(
    conn: Connection,
    variables: Triggers,
    account_id: str,
    trigger_uuid: str,
    changes: dict[str, Any],
    pointer: str,
) -> None:
    """A partial settings object onto one trigger row; variables merge (a null entry deletes)."""
    changes = dict(changes)
    given = changes.pop("environment_variables", None)
    if "build_token_uuid" in changes:
        changes["build_token_uuid"] = changes["build_token_uuid"].lower()
        await build_tokens.get(conn, account_id, changes["build_token_uuid"])
    if changes:
        await triggers.update(conn, trigger_uuid, changes, clock.now())
    if given is not None:
        await write_variables(conn, variables, trigger_uuid, given, pointer)


async def write_variables(
    conn: Connection,
    variables: Triggers,
    trigger_uuid: str,
    changes: dict[str, VariableInput | None],
    pointer: str,
) -> None:
    try:
        await variables.write_variables(conn, trigger_uuid, changes)
    except InvalidRequestBody as exc:
        # Point into this body, not into a bare variables map.
        detail = exc.chain[0].message if exc.chain else None
        where = f"{pointer}/environment_variables{exc.pointer or ''}"
        raise InvalidRequestBody(detail, pointer=where) from exc


class Previews:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        variables: Triggers,
        builds: Builds,
    ) -> None:
        self._db = db
        self._settings = settings
        self._variables = variables
        self._builds = builds

    # --- the API ------------------------------------------------------------------------------

    async def page(self, account_id: str, tag: str, page: Page) -> tuple[list[Preview], int]:
        async with self._db.connection() as conn:
            await self._configured(conn, account_id, tag)
            rows, total = await previews.page(conn, account_id, tag, page)
            return [await self._wire(conn, row) for row in rows], total

    async def get(self, account_id: str, tag: str, preview_id: str) -> Preview:
        async with self._db.connection() as conn:
            return await self._wire(conn, await previews.get(conn, account_id, tag, preview_id))

    async def update(
        self, account_id: str, tag: str, preview_id: str, body: UpdatePreviewRequest
    ) -> Preview:
        if all(value is msgspec.UNSET for value in msgspec.structs.astuple(body)):
            raise InvalidRequestBody("give at least one property", pointer="")
        async with self._db.transaction() as conn:
            row = await previews.get(conn, account_id, tag, preview_id)
            now = clock.now()
            changes: dict[str, Any] = {}
            if isinstance(body.branch, str) and body.branch != row["branch"]:
                if "*" in body.branch:
                    raise InvalidRequestBody(
                        "branch is a branch name, not a pattern", pointer="/branch"
                    )
                if await previews.of_branch(conn, account_id, tag, body.branch) is not None:
                    raise InvalidRequestBody(
                        "another Preview of this Worker tracks that branch", pointer="/branch"
                    )
                changes["branch"] = body.branch
                await triggers.update(
                    conn,
                    row["trigger_uuid"],
                    {"branch_includes": [body.branch], "trigger_name": _name(body.branch)},
                    now,
                )
            if isinstance(body.delete_on_branch_delete, bool):
                changes["delete_on_branch_delete"] = body.delete_on_branch_delete
            if not isinstance(body.build_settings, msgspec.UnsetType):
                pointer = "/build_settings"
                given = changes_of(body.build_settings, pointer)
                await apply_settings(
                    conn, self._variables, account_id, row["trigger_uuid"], given, pointer
                )
            await previews.update(conn, preview_id, changes, now)
            return await self._wire(conn, await previews.get(conn, account_id, tag, preview_id))

    async def builds_page(
        self, account_id: str, tag: str, preview_id: str, page: Page
    ) -> tuple[list[Build], int]:
        async with self._db.connection() as conn:
            row = await previews.get(conn, account_id, tag, preview_id)
            rows, total = await previews.builds_page(conn, row["trigger_uuid"], page)
            return await builds.with_triggers(conn, rows), total

    async def create_build(
        self, account_id: str, tag: str, preview_id: str, body: CreateBuildRequest
    ) -> Build:
        """A manual build of the Preview's branch (or of a commit of it)."""
        async with self._db.transaction() as conn:
            row = await previews.get(conn, account_id, tag, preview_id)
            trigger = await triggers.get(conn, account_id, row["trigger_uuid"])
            queued = await self._builds.queue(
                conn,
                trigger,
                source="manual",
                branch=body.branch or row["branch"],
                commit_hash=(body.commit_hash or "").lower(),
            )
            return builds.to_wire(queued, trigger)

    async def create_manual(
        self, account_id: str, trigger_uuid: str, body: CreateBuildRequest
    ) -> Build:
        """POST …/triggers/{uuid}/builds: on a Worker with Previews on, a build of the
        production trigger for another branch builds that branch's Preview (made first if
        need be), as a push of it would; anything else is the plain manual build."""
        if body.branch:
            async with self._db.transaction() as conn:
                trigger = await triggers.get(conn, account_id, trigger_uuid)
                # The Preview's trigger, or the plain manual build of this one, queued in
                # the transaction that looked (one commit for the POST, not two).
                target = await self._preview_target(conn, trigger, body.branch) or trigger
                queued = await self._builds.queue(
                    conn,
                    target,
                    source="manual",
                    branch=body.branch,
                    commit_hash=(body.commit_hash or "").lower(),
                )
                return builds.to_wire(queued, target)
        return await self._builds.create_manual(account_id, trigger_uuid, body)

    # --- pushes -------------------------------------------------------------------------------

    async def for_push(self, conn: Connection, repo_connection_uuid: str, branch: str) -> list[Row]:
        """The Preview triggers a push of `branch` makes: one per Worker building from this
        connection with Previews on and no Preview of that branch yet (not its production
        branch). Existing Previews' triggers match the push by themselves."""
        made = []
        for config in await previews.configs_of_connection(conn, repo_connection_uuid):
            account_id, tag = config["account_id"], config["external_script_id"]
            live = await legacy_live(conn, account_id, tag)
            if not live or patterns(roles(live)[0], "branch_includes")[0] == branch:
                continue
            if await previews.of_branch(conn, account_id, tag, branch) is None:
                made.append(await self._make(conn, config, branch))
        return made

    async def branch_deleted(self, conn: Connection, repo_connection_uuid: str, branch: str) -> int:
        """Delete the Previews of `branch` whose flag says so; how many were deleted."""
        deleted = 0
        for config in await previews.configs_of_connection(conn, repo_connection_uuid):
            row = await previews.of_branch(
                conn, config["account_id"], config["external_script_id"], branch
            )
            if row is not None and row["delete_on_branch_delete"]:
                await self._delete(conn, row)
                deleted += 1
        return deleted

    # --- inside a transaction -----------------------------------------------------------------

    async def _configured(self, conn: Connection, account_id: str, tag: str) -> None:
        """The Worker is this account's and has a build configuration (else 12040)."""
        if not await legacy_live(conn, account_id, tag):
            raise NoBuildConfiguration()

    async def _preview_target(self, conn: Connection, trigger: Row, branch: str) -> Row | None:
        """The Preview trigger a manual build of `branch` with this trigger belongs to."""
        account_id, tag = trigger["account_id"], trigger["external_script_id"]
        config = await previews.config(conn, account_id, tag)
        if config is None or not config["previews_enabled"]:
            return None
        production, _ = roles(await legacy_live(conn, account_id, tag))
        if production["trigger_uuid"] != trigger["trigger_uuid"]:
            return None  # a legacy or other trigger builds as it always did
        if patterns(production, "branch_includes")[0] == branch:
            return None
        existing = await previews.of_branch(conn, account_id, tag, branch)
        if existing is not None:
            return await triggers.get_any(conn, existing["trigger_uuid"])
        return await self._make(conn, config, branch)

    async def _make(self, conn: Connection, config: Row, branch: str) -> Row:
        account_id, tag = config["account_id"], config["external_script_id"]
        existing = await previews.all_of_worker(conn, account_id, tag)
        if len(existing) >= self._settings.previews_max_per_worker:
            await self._delete(conn, await self._least_recently_deployed(conn, existing))
        base = await triggers.get_any(conn, config["trigger_uuid"])
        trigger = await copy_trigger(conn, self._variables, base, _name(branch), ([branch], []))
        now = clock.now()
        await previews.insert(
            conn,
            {
                "preview_id": clock.new_hex32(),  # the reference types it as a Worker tag: 32 hex
                "account_id": account_id,
                "external_script_id": tag,
                "branch": branch,
                "trigger_uuid": trigger["trigger_uuid"],
                "delete_on_branch_delete": True,
                "created_on": now,
                "modified_on": now,
            },
        )
        return trigger

    async def _least_recently_deployed(self, conn: Connection, rows: list[Row]) -> Row:
        """Never deployed first (oldest made first), then the oldest last deployment."""

        async def key(row: Row) -> tuple[str, str]:
            _, deployed = await previews.latest_builds(conn, row["trigger_uuid"])
            return (deployed["stopped_on"] if deployed else "", row["created_on"])

        keyed = [(await key(row), row) for row in rows]
        return min(keyed, key=lambda pair: pair[0])[1]

    async def _delete(self, conn: Connection, row: Row) -> None:
        await previews.delete(conn, row["preview_id"])
        await retire(conn, row["trigger_uuid"], clock.now())

    async def _wire(self, conn: Connection, row: Row) -> Preview:
        trigger = await triggers.get_any(conn, row["trigger_uuid"])
        latest, deployed = await previews.latest_builds(conn, row["trigger_uuid"])
        return Preview(
            preview_id=row["preview_id"],
            script_tag=row["external_script_id"],
            branch=row["branch"],
            delete_on_branch_delete=bool(row["delete_on_branch_delete"]),
            build_settings=await settings_of(conn, self._variables, trigger),
            preview_url=deployed["preview_url"] if deployed else None,
            last_deployed_on=deployed["stopped_on"] if deployed else None,
            latest_build_uuid=latest["build_uuid"] if latest else None,
            created_on=row["created_on"],
            modified_on=row["modified_on"],
        )


def _name(branch: str) -> str:
    return f"Preview: {branch}"[:256]
