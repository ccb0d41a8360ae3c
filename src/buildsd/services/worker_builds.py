"""The Worker build config (spec §1b, §9; issue 13): a view over a Worker's connection, its
triggers and its Previews settings.

POST makes a repository connection and a "Production" trigger. Asked for previews beside it,
it makes a legacy "Previews" trigger (`branch_includes ["*"]`) and answers
`previews_enabled: false`, as live Cloudflare was recorded doing; `migrate_to_previews` then
turns that trigger into the Previews base config (services/previews.py). Roles:

* production: the oldest live trigger that builds exactly one branch named without `*`,
  else the oldest live trigger;
* legacy non-production: another live trigger that builds every branch;
* Previews: the `previews_configs` row and its base-config trigger row (never a trigger of
  its own: it matches no branch), and one trigger row per Preview.
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
    PreviewsNeedMigration,
)
from buildsd.services import audit
from buildsd.services.grants import Grants
from buildsd.services.previews import (
    BASE,
    LISTS,
    SCALARS,
    apply_settings,
    changes_of,
    copy_trigger,
    legacy_live,
    patterns,
    retire,
    roles,
    settings_of,
    write_variables,
)
from buildsd.services.repo_connections import check_names
from buildsd.services.triggers import Triggers
from buildsd.store import build_tokens, previews, repo_connections, triggers, workers
from buildsd.wire import (
    CreateWorkerBuildRequest,
    UpdateWorkerBuildRequest,
    UpdateWorkerBuildSettingsInput,
    UpdateWorkerGitRepositoryInput,
    WorkerBuild,
    WorkerBuildSettings,
    WorkerBuildSettingsInput,
    WorkerGitRepository,
)
from buildsd.wire_previews import PREVIEW_COMMAND, MigrateToPreviewsRequest

PRODUCTION = "Production"
PREVIEWS = "Previews"


@dataclass(frozen=True, slots=True)
class _Where:
    """What every trigger a POST makes shares."""

    account_id: str
    tag: str
    repo_connection_uuid: str
    now: str


def _check_branch(branch: str, pointer: str) -> None:
    # A git ref cannot contain `*`; in a trigger it would become a pattern for many branches.
    if "*" in branch:
        raise InvalidRequestBody("branch is a branch name, not a pattern", pointer=pointer)


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
            base, pointer = body.previews_base_config, "/previews_base_config"
            if body.previews_enabled:
                # Cloudflare's recorded quirk: asked for previews, create makes a legacy
                # non-production trigger and answers previews_enabled false; the client then
                # calls migrate_to_previews. Without a base config it builds as production.
                if base is None:
                    base, pointer = body.production_settings, "/production_settings"
                await self._insert(conn, where, PREVIEWS, (["*"], [repo.branch]), base, pointer)
            elif base is not None:
                # Kept for later (previews off): the base config a PATCH can switch on.
                row = await self._insert(conn, where, BASE, ([], []), base, pointer)
                await previews.put_config(conn, account_id, tag, row, False, now)
            return await self._view(conn, account_id, tag)

    async def get(self, account_id: str, tag: str) -> WorkerBuild:
        async with self._db.connection() as conn:
            return await self._view(conn, account_id, tag)

    async def update(
        self,
        account_id: str,
        tag: str,
        body: UpdateWorkerBuildRequest,
        patch_existing_previews: bool = False,
    ) -> WorkerBuild:
        """PATCH: the production branch, either settings object, previews on or off;
        `patch_existing_previews` also applies base-config changes to every Preview."""
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
            production_changes = changes_of(body.production_settings, "/production_settings")
        if isinstance(body.previews_base_config, UpdateWorkerBuildSettingsInput):
            preview_changes = changes_of(body.previews_base_config, "/previews_base_config")
        async with self._db.transaction() as conn:
            await workers.lock(conn, account_id, tag)
            live = await legacy_live(conn, account_id, tag)
            if not live:
                raise NoBuildConfiguration()
            production, legacy = roles(live)
            config = await previews.config(conn, account_id, tag)
            if body.previews_enabled is True and legacy is not None:
                raise PreviewsNeedMigration()
            now = clock.now()
            if branch is not None:
                await self._move_branch(conn, production, legacy, branch, now)
            if production_changes is not None:
                await self._apply(
                    conn, account_id, production, production_changes, "/production_settings"
                )
            if body.previews_enabled is False and legacy is not None:
                await retire(conn, legacy["trigger_uuid"], now)
                legacy = None
            if body.previews_enabled is True and config is None:
                # Previews on at once (no legacy trigger to migrate): based on production.
                base = await self._base_from(conn, production, PREVIEW_COMMAND)
                await previews.put_config(conn, account_id, tag, base["trigger_uuid"], True, now)
            elif isinstance(body.previews_enabled, bool) and config is not None:
                await previews.put_config(
                    conn, account_id, tag, config["trigger_uuid"], body.previews_enabled, now
                )
            config = await previews.config(conn, account_id, tag)
            if preview_changes is not None:
                await self._patch_previews(
                    conn, account_id, (config, legacy), preview_changes, patch_existing_previews
                )
            return await self._view(conn, account_id, tag)

    async def migrate_to_previews(
        self, account_id: str, tag: str, body: MigrateToPreviewsRequest
    ) -> WorkerBuild:
        """The legacy non-production trigger's settings (else production's) become the Previews
        base config with `deploy_command`; the legacy trigger is removed; Previews are on.
        A Worker already on Previews gets the deploy command and stays on (idempotent)."""
        async with self._db.transaction() as conn:
            await workers.lock(conn, account_id, tag)
            live = await legacy_live(conn, account_id, tag)
            if not live:
                raise NoBuildConfiguration()
            production, legacy = roles(live)
            config = await previews.config(conn, account_id, tag)
            now = clock.now()
            if config is not None and legacy is None:
                trigger_uuid = config["trigger_uuid"]
                await triggers.update(
                    conn, trigger_uuid, {"deploy_command": body.deploy_command}, now
                )
            else:
                base = await self._base_from(conn, legacy or production, body.deploy_command)
                trigger_uuid = base["trigger_uuid"]
                if config is not None:  # a base config kept while off: replaced by the legacy's
                    await retire(conn, config["trigger_uuid"], now)
                if legacy is not None:
                    await retire(conn, legacy["trigger_uuid"], now)
            await previews.put_config(conn, account_id, tag, trigger_uuid, True, now)
            return await self._view(conn, account_id, tag)

    async def delete(self, account_id: str, tag: str) -> str:
        """Soft-delete every live trigger of the Worker (its Previews' too), cancelling their
        unfinished builds; its Previews and Previews settings go."""
        async with self._db.transaction() as conn:
            await workers.lock(conn, account_id, tag)
            if not await legacy_live(conn, account_id, tag):
                raise NoBuildConfiguration()
            now = clock.now()
            for row in await previews.all_of_worker(conn, account_id, tag):
                await previews.delete(conn, row["preview_id"])
            await previews.delete_config(conn, account_id, tag)
            for row in await triggers.list_by_worker(conn, account_id, tag):
                await retire(conn, row["trigger_uuid"], now)
        return "ok"

    # --- inside a transaction ----------------------------------------------------------------

    async def _view(self, conn: Connection, account_id: str, tag: str) -> WorkerBuild:
        live = await legacy_live(conn, account_id, tag)
        if not live:
            raise NoBuildConfiguration()
        production, legacy = roles(live)
        config = await previews.config(conn, account_id, tag)
        base: Row | None = legacy
        if config is not None and legacy is None:
            # None if someone deleted that row as a trigger: the default base config then.
            base = await triggers.find(conn, account_id, config["trigger_uuid"])
        return WorkerBuild(
            script_tag=tag,
            git_repository=WorkerGitRepository(
                provider_type=production["provider_type"],
                provider_account_id=production["provider_account_id"],
                provider_account_name=production["provider_account_name"],
                repo_id=production["repo_id"],
                repo_name=production["repo_name"],
                branch=patterns(production, "branch_includes")[0],
                grant_id=None,  # connections keep no grant (D17)
            ),
            production_settings=await settings_of(conn, self._triggers, production),
            # On only through Previews proper: a legacy trigger is not Previews (issue 13).
            previews_enabled=bool(config is not None and config["previews_enabled"]),
            previews_base_config=await self._base_settings(conn, production, base),
        )

    async def _base_settings(
        self, conn: Connection, production: Row, base: Row | None
    ) -> WorkerBuildSettings:
        """Always an object (issue 13): with neither a base config nor a legacy trigger, the
        one switching Previews on would make, production's settings with the Preview command."""
        if base is not None:
            return await settings_of(conn, self._triggers, base)
        settings = await settings_of(conn, self._triggers, production)
        settings.deploy_command = PREVIEW_COMMAND
        return settings

    async def _base_from(self, conn: Connection, source: Row, deploy_command: str) -> Row:
        """A base-config trigger row copied from `source` (matches no branch)."""
        return await copy_trigger(
            conn, self._triggers, source, BASE, ([], []), {"deploy_command": deploy_command}
        )

    async def _patch_previews(
        self,
        conn: Connection,
        account_id: str,
        where: tuple[Row | None, Row | None],
        changes: dict[str, Any],
        existing: bool,
    ) -> None:
        """Base-config changes onto the legacy trigger, else the Previews base config (and,
        asked, every Preview); with neither there is nothing to apply them to: ignored."""
        config, legacy = where
        pointer = "/previews_base_config"
        if legacy is not None:
            await self._apply(conn, account_id, legacy, changes, pointer)
            return
        if config is None:
            return
        await apply_settings(
            conn, self._triggers, account_id, config["trigger_uuid"], changes, pointer
        )
        if existing:
            for row in await previews.all_of_worker(conn, account_id, config["external_script_id"]):
                await apply_settings(
                    conn, self._triggers, account_id, row["trigger_uuid"], changes, pointer
                )

    async def _insert(
        self,
        conn: Connection,
        where: _Where,
        name: str,
        branches: tuple[list[str], list[str]],
        settings: WorkerBuildSettingsInput,
        pointer: str,
    ) -> str:
        token_uuid = settings.build_token_uuid.lower()
        await build_tokens.get(conn, where.account_id, token_uuid)
        values: dict[str, Any] = {field: getattr(settings, field) for field in SCALARS + LISTS}
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
        await write_variables(
            conn, self._triggers, values["trigger_uuid"], settings.environment_variables, pointer
        )
        return str(values["trigger_uuid"])

    async def _apply(
        self, conn: Connection, account_id: str, row: Row, changes: dict[str, Any], pointer: str
    ) -> None:
        await apply_settings(
            conn, self._triggers, account_id, row["trigger_uuid"], changes, pointer
        )

    async def _move_branch(
        self, conn: Connection, production: Row, legacy: Row | None, branch: str, now: str
    ) -> None:
        """Production builds the new branch; a legacy trigger stops excluding the old one."""
        old = patterns(production, "branch_includes")[0]
        await triggers.update(conn, production["trigger_uuid"], {"branch_includes": [branch]}, now)
        if legacy is not None:
            excludes = [branch if p == old else p for p in patterns(legacy, "branch_excludes")]
            if branch not in excludes:
                excludes.append(branch)
            await triggers.update(conn, legacy["trigger_uuid"], {"branch_excludes": excludes}, now)
