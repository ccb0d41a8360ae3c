"""The Worker build configuration (spec §1b, §9): a view over a Worker's connection and triggers.

Nothing is stored for it (D16): POST makes a repository connection and a "Production" trigger
(plus a "Previews" trigger when previews are on), and GET reads them back. Which trigger plays
which part:

* production: the oldest live trigger that builds exactly one branch named without `*`,
  else the oldest live trigger;
* previews: another live trigger that builds every branch (`branch_includes ["*"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from buildsd import clock
from buildsd.db import Connection, Database, Row
from buildsd.errors import (
    AlreadyExists,
    InvalidRequestBody,
    NoBuildConfiguration,
    NotFound,
)
from buildsd.services import audit
from buildsd.services.grants import Grants
from buildsd.services.repo_connections import check_names
from buildsd.services.triggers import Triggers
from buildsd.store import build_tokens, builds, repo_connections, triggers, workers
from buildsd.wire import (
    CreateWorkerBuildRequest,
    UpdateWorkerBuildRequest,
    UpdateWorkerBuildSettingsInput,
    UpdateWorkerGitRepositoryInput,
    VariableInput,
    WorkerBuild,
    WorkerBuildSettings,
    WorkerBuildSettingsInput,
    WorkerGitRepository,
)

PRODUCTION = "Production"
PREVIEWS = "Previews"
_SCALARS = ("build_command", "deploy_command", "root_directory", "build_caching_enabled")
_LISTS = ("path_includes", "path_excludes")


@dataclass(frozen=True, slots=True)
class _Where:
    """What every trigger a POST makes shares."""

    account_id: str
    tag: str
    repo_connection_uuid: str
    now: str


def _patterns(row: Row, column: str) -> list[str]:
    return msgspec.json.decode(row[column], type=list[str])


def _roles(live: list[Row]) -> tuple[Row, Row | None]:
    """(production, previews) among a Worker's live triggers, oldest first."""
    production = next(
        (
            row
            for row in live
            if len(includes := _patterns(row, "branch_includes")) == 1 and "*" not in includes[0]
        ),
        live[0],
    )
    previews = next(
        (
            row
            for row in live
            if row is not production and _patterns(row, "branch_includes") == ["*"]
        ),
        None,
    )
    return production, previews


def _check_branch(branch: str, pointer: str) -> None:
    # A git ref cannot contain `*`; in a trigger it would become a pattern for many branches.
    if "*" in branch:
        raise InvalidRequestBody("branch is a branch name, not a pattern", pointer=pointer)


def _changes(settings: UpdateWorkerBuildSettingsInput, pointer: str) -> dict[str, Any]:
    """The fields a partial settings object sets (at least one, as the schema requires)."""
    given = {
        name: value
        for name, value in msgspec.structs.asdict(settings).items()
        if value is not msgspec.UNSET
    }
    if not given:
        raise InvalidRequestBody("give at least one setting", pointer=pointer)
    return given


async def _retire(conn: Connection, trigger_uuid: str, now: str) -> None:
    """Soft-delete a trigger and cancel its unfinished builds, as deleting a trigger does (D6)."""
    await triggers.soft_delete(conn, trigger_uuid, now)
    for build in await builds.unfinished_of_trigger(conn, trigger_uuid):
        await builds.stop(conn, build["build_uuid"], outcome="cancelled", now=now, duration_ms=None)


class WorkerBuilds:
    def __init__(self, db: Database, triggers: Triggers, grants: Grants) -> None:
        self._db = db
        self._triggers = triggers  # its variables code, run inside these transactions
        self._grants = grants

    async def create(self, account_id: str, body: CreateWorkerBuildRequest) -> WorkerBuild:
        """POST /builds/workers; 409 when the Worker already has a live build configuration."""
        repo = body.git_repository
        if repo.provider_type == "gitlab_internal" and repo.grant_id is None:
            raise InvalidRequestBody(
                "gitlab_internal needs a grant_id", pointer="/git_repository/grant_id"
            )
        _check_branch(repo.branch, "/git_repository/branch")
        given = check_names(repo, "/git_repository")
        tag = body.script_tag
        async with self._db.transaction() as conn:
            now = clock.now()
            if not await workers.claim(conn, account_id=account_id, tag=tag, now=now):
                raise NotFound()  # the tag is another account's Worker
            if await triggers.list_by_worker(conn, account_id, tag):
                raise AlreadyExists()
            audit.name_resource(tag)
            # The connection it makes is one like any other: inside the grants (D21).
            await self._grants.check_connection(conn, account_id, given)
            connection = await repo_connections.upsert(
                conn,
                repo_connection_uuid=clock.new_uuid(),
                account_id=account_id,
                provider_type=repo.provider_type,
                provider_account_id=repo.provider_account_id,
                provider_account_name=repo.provider_account_name,
                repo_id=repo.repo_id,
                repo_name=repo.repo_name,
                now=now,
            )
            where = _Where(account_id, tag, connection["repo_connection_uuid"], now)
            await self._insert(
                conn,
                where,
                PRODUCTION,
                ([repo.branch], []),
                body.production_settings,
                "/production_settings",
            )
            if body.previews_enabled:
                # Without a base config of their own, previews build as production does.
                base, pointer = body.previews_base_config, "/previews_base_config"
                if base is None:
                    base, pointer = body.production_settings, "/production_settings"
                await self._insert(conn, where, PREVIEWS, (["*"], [repo.branch]), base, pointer)
            return await self._view(conn, account_id, tag)

    async def get(self, account_id: str, tag: str) -> WorkerBuild:
        async with self._db.connection() as conn:
            return await self._view(conn, account_id, tag)

    async def update(
        self, account_id: str, tag: str, body: UpdateWorkerBuildRequest
    ) -> WorkerBuild:
        """PATCH: the production branch, either settings object, previews on or off."""
        if all(value is msgspec.UNSET for value in msgspec.structs.astuple(body)):
            raise InvalidRequestBody("give at least one property", pointer="")
        branch: str | None = None
        if isinstance(body.git_repository, UpdateWorkerGitRepositoryInput):
            if isinstance(body.git_repository.branch, msgspec.UnsetType):
                raise InvalidRequestBody("give the branch", pointer="/git_repository")
            branch = body.git_repository.branch
            _check_branch(branch, "/git_repository/branch")
        production_changes = preview_changes = None
        if isinstance(body.production_settings, UpdateWorkerBuildSettingsInput):
            production_changes = _changes(body.production_settings, "/production_settings")
        if isinstance(body.previews_base_config, UpdateWorkerBuildSettingsInput):
            preview_changes = _changes(body.previews_base_config, "/previews_base_config")
        async with self._db.transaction() as conn:
            await workers.lock(conn, account_id, tag)
            live = await triggers.list_by_worker(conn, account_id, tag)
            if not live:
                raise NoBuildConfiguration()
            production, previews = _roles(live)
            now = clock.now()
            if branch is not None:
                await self._move_branch(conn, production, previews, branch, now)
            if production_changes is not None:
                await self._apply(
                    conn, account_id, production, production_changes, "/production_settings"
                )
            if body.previews_enabled is False and previews is not None:
                await _retire(conn, previews["trigger_uuid"], now)
                previews = None
            elif body.previews_enabled is True and previews is None:
                previews = await self._start_previews(conn, account_id, tag)
            # A base config for previews that stay off has nothing to apply to: ignored.
            if preview_changes is not None and previews is not None:
                await self._apply(
                    conn, account_id, previews, preview_changes, "/previews_base_config"
                )
            return await self._view(conn, account_id, tag)

    async def delete(self, account_id: str, tag: str) -> str:
        """Soft-delete every live trigger of the Worker, cancelling their unfinished builds."""
        async with self._db.transaction() as conn:
            await workers.lock(conn, account_id, tag)
            live = await triggers.list_by_worker(conn, account_id, tag)
            if not live:
                raise NoBuildConfiguration()
            now = clock.now()
            for row in live:
                await _retire(conn, row["trigger_uuid"], now)
        return "ok"

    # --- inside a transaction ----------------------------------------------------------------

    async def _view(self, conn: Connection, account_id: str, tag: str) -> WorkerBuild:
        live = await triggers.list_by_worker(conn, account_id, tag)
        if not live:
            raise NoBuildConfiguration()
        production, previews = _roles(live)
        result = WorkerBuild(
            script_tag=tag,
            git_repository=WorkerGitRepository(
                provider_type=production["provider_type"],
                provider_account_id=production["provider_account_id"],
                provider_account_name=production["provider_account_name"],
                repo_id=production["repo_id"],
                repo_name=production["repo_name"],
                branch=_patterns(production, "branch_includes")[0],
                grant_id=None,  # connections keep no grant (D17)
            ),
            production_settings=await self._settings(conn, production),
            previews_enabled=previews is not None,
        )
        if previews is not None:
            result.previews_base_config = await self._settings(conn, previews)
        return result

    async def _settings(self, conn: Connection, row: Row) -> WorkerBuildSettings:
        return WorkerBuildSettings(
            build_command=row["build_command"],
            deploy_command=row["deploy_command"],
            build_token_uuid=row["build_token_uuid"],
            root_directory=row["root_directory"],
            path_includes=_patterns(row, "path_includes"),
            path_excludes=_patterns(row, "path_excludes"),
            build_caching_enabled=bool(row["build_caching_enabled"]),
            environment_variables=await self._triggers.read_variables(conn, row["trigger_uuid"]),
        )

    async def _insert(
        self,
        conn: Connection,
        where: _Where,
        name: str,
        branches: tuple[list[str], list[str]],
        settings: WorkerBuildSettingsInput,
        pointer: str,
    ) -> None:
        token_uuid = settings.build_token_uuid.lower()
        await build_tokens.get(conn, where.account_id, token_uuid)
        values: dict[str, Any] = {field: getattr(settings, field) for field in _SCALARS + _LISTS}
        values.update(
            trigger_uuid=clock.new_uuid(),
            account_id=where.account_id,
            external_script_id=where.tag,
            repo_connection_uuid=where.repo_connection_uuid,
            build_token_uuid=token_uuid,
            trigger_name=name,
            branch_includes=branches[0],
            branch_excludes=branches[1],
            created_on=where.now,
            modified_on=where.now,
            deleted_on=None,
        )
        await triggers.insert(conn, values)
        await self._variables(conn, values["trigger_uuid"], settings.environment_variables, pointer)

    async def _apply(
        self, conn: Connection, account_id: str, row: Row, changes: dict[str, Any], pointer: str
    ) -> None:
        """A partial settings object onto one trigger; variables merge (a null entry deletes)."""
        changes = dict(changes)
        variables = changes.pop("environment_variables", None)
        if "build_token_uuid" in changes:
            changes["build_token_uuid"] = changes["build_token_uuid"].lower()
            await build_tokens.get(conn, account_id, changes["build_token_uuid"])
        if changes:
            await triggers.update(conn, row["trigger_uuid"], changes, clock.now())
        if variables is not None:
            await self._variables(conn, row["trigger_uuid"], variables, pointer)

    async def _variables(
        self,
        conn: Connection,
        trigger_uuid: str,
        changes: dict[str, VariableInput | None],
        pointer: str,
    ) -> None:
        try:
            await self._triggers.write_variables(conn, trigger_uuid, changes)
        except InvalidRequestBody as exc:
            # Point into this body, not into a bare variables map.
            detail = exc.chain[0].message if exc.chain else None
            where = f"{pointer}/environment_variables{exc.pointer or ''}"
            raise InvalidRequestBody(detail, pointer=where) from exc

    async def _move_branch(
        self, conn: Connection, production: Row, previews: Row | None, branch: str, now: str
    ) -> None:
        """Production builds the new branch; previews stop excluding the old one for it."""
        old = _patterns(production, "branch_includes")[0]
        await triggers.update(conn, production["trigger_uuid"], {"branch_includes": [branch]}, now)
        if previews is not None:
            excludes = [branch if p == old else p for p in _patterns(previews, "branch_excludes")]
            if branch not in excludes:
                excludes.append(branch)
            await triggers.update(
                conn, previews["trigger_uuid"], {"branch_excludes": excludes}, now
            )

    async def _start_previews(self, conn: Connection, account_id: str, tag: str) -> Row:
        """A Previews trigger copied from production as it now is, variables included."""
        production, _ = _roles(await triggers.list_by_worker(conn, account_id, tag))
        now = clock.now()
        values: dict[str, Any] = {field: production[field] for field in _SCALARS}
        values.update({field: _patterns(production, field) for field in _LISTS})
        values.update(
            trigger_uuid=clock.new_uuid(),
            account_id=account_id,
            external_script_id=tag,
            repo_connection_uuid=production["repo_connection_uuid"],
            build_token_uuid=production["build_token_uuid"],
            trigger_name=PREVIEWS,
            branch_includes=["*"],
            branch_excludes=[_patterns(production, "branch_includes")[0]],
            build_caching_enabled=bool(production["build_caching_enabled"]),
            created_on=now,
            modified_on=now,
            deleted_on=None,
        )
        await triggers.insert(conn, values)
        copied: dict[str, VariableInput | None] = {
            key: VariableInput(value=value, is_secret=is_secret)
            for key, (value, is_secret) in (
                await self._triggers.plain_variables(conn, production["trigger_uuid"])
            ).items()
        }
        await self._triggers.write_variables(conn, values["trigger_uuid"], copied)
        return await triggers.get(conn, account_id, values["trigger_uuid"])
