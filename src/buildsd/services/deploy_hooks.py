"""Deploy hooks (spec §8): secret URLs that queue a build of one branch of a Worker (D15, D16)."""

from __future__ import annotations

import msgspec

from buildsd import clock
from buildsd.db import Connection, Database, IntegrityError, Row
from buildsd.errors import AlreadyExists, DeployHookRateLimited, InvalidRequestBody, NotFound
from buildsd.services import audit
from buildsd.services.builds import Builds
from buildsd.services.patterns import branch_builds
from buildsd.store import builds, deploy_hooks, triggers, workers
from buildsd.wire import (
    CONTROL,
    DeployHook,
    DeployHookRequest,
    DetailedDeployHook,
    TriggeredDeployHook,
)

# Product docs: 10 hook-started builds a minute per Worker, 100 per account (D15).
PER_WORKER = 10
PER_ACCOUNT = 100
WINDOW_MS = 60_000
RETRY_AFTER = 60  # seconds: by then every build that counted has left the window


def _cleaned(body: DeployHookRequest) -> tuple[str, str]:
    """Name and branch without surrounding blanks, as Cloudflare's own schema trims them."""
    name, branch = body.deploy_hook_name.strip(), body.branch.strip()
    if not name:
        raise InvalidRequestBody("deploy_hook_name is blank", pointer="/deploy_hook_name")
    if not branch:
        raise InvalidRequestBody("branch is blank", pointer="/branch")
    if CONTROL.search(branch):  # a newline in a branch would forge lines in build logs
        raise InvalidRequestBody("branch holds a control character", pointer="/branch")
    return name, branch


def _trigger_for(live: list[Row], branch: str) -> Row:
    """The Worker's first trigger that would build `branch`, else its oldest; 404 if none."""
    if not live:
        raise NotFound()
    for row in live:
        includes = msgspec.json.decode(row["branch_includes"], type=list[str])
        excludes = msgspec.json.decode(row["branch_excludes"], type=list[str])
        if branch_builds(branch, includes, excludes):
            return row
    return live[0]


def _triggered(build: Row, already_exists: bool) -> TriggeredDeployHook:
    return TriggeredDeployHook(
        build_uuid=build["build_uuid"],
        created_on=build["created_on"],
        status=build["status"],
        already_exists=already_exists,
    )


class DeployHooks:
    def __init__(self, db: Database, builds: Builds) -> None:
        self._db = db
        self._builds = builds

    async def list_(self, account_id: str, script_name: str) -> list[DetailedDeployHook]:
        async with self._db.connection() as conn:
            worker = await workers.get_by_name(conn, account_id, script_name)
            rows = await deploy_hooks.list_for_worker(conn, account_id, worker["tag"])
        return [deploy_hooks.to_detailed(row) for row in rows]

    async def create(
        self, account_id: str, script_name: str, body: DeployHookRequest
    ) -> DeployHook:
        name, branch = _cleaned(body)
        hook_uuid = clock.new_uuid()
        async with self._db.transaction() as conn:
            tag = (await workers.get_by_name(conn, account_id, script_name))["tag"]
            await self._refuse_taken(conn, account_id, tag, name, hook_uuid)
            try:
                await deploy_hooks.insert(
                    conn,
                    deploy_hook_uuid=hook_uuid,
                    account_id=account_id,
                    tag=tag,
                    deploy_hook_name=name,
                    branch=branch,
                    now=clock.now(),
                )
            except IntegrityError as exc:  # a concurrent create took the name first
                raise AlreadyExists() from exc
            row = await deploy_hooks.get(conn, account_id, tag, hook_uuid)
            audit.name_resource(hook_uuid)
        return deploy_hooks.to_wire(row)

    async def get(self, account_id: str, script_name: str, hook_uuid: str) -> DeployHook:
        async with self._db.connection() as conn:
            tag = (await workers.get_by_name(conn, account_id, script_name))["tag"]
            row = await deploy_hooks.get(conn, account_id, tag, hook_uuid.lower())
        return deploy_hooks.to_wire(row)

    async def update(
        self, account_id: str, script_name: str, hook_uuid: str, body: DeployHookRequest
    ) -> DeployHook:
        """PUT: a full replace of name and branch; the uuid (the secret URL) stays."""
        name, branch = _cleaned(body)
        hook_uuid = hook_uuid.lower()
        async with self._db.transaction() as conn:
            tag = (await workers.get_by_name(conn, account_id, script_name))["tag"]
            await deploy_hooks.get(conn, account_id, tag, hook_uuid)
            await self._refuse_taken(conn, account_id, tag, name, hook_uuid)
            try:
                await deploy_hooks.update(
                    conn, hook_uuid, deploy_hook_name=name, branch=branch, now=clock.now()
                )
            except IntegrityError as exc:
                raise AlreadyExists() from exc
            row = await deploy_hooks.get(conn, account_id, tag, hook_uuid)
        return deploy_hooks.to_wire(row)

    async def delete(self, account_id: str, script_name: str, hook_uuid: str) -> DeployHook:
        """Hard delete (D6); the result is the hook as it was, as Cloudflare answers."""
        async with self._db.transaction() as conn:
            tag = (await workers.get_by_name(conn, account_id, script_name))["tag"]
            row = await deploy_hooks.get(conn, account_id, tag, hook_uuid.lower())
            await deploy_hooks.delete(conn, row["deploy_hook_uuid"])
        return deploy_hooks.to_wire(row)

    async def trigger(self, hook_uuid: str) -> TriggeredDeployHook:
        """POST /workers/builds/deploy_hooks/{uuid}: no credentials, the uuid is the secret.

        A queued build of the same trigger and branch is returned as it is (`already_exists`);
        otherwise the rate limits apply, then a build is queued. Check and insert happen in one
        transaction holding the Worker's lock, so concurrent calls cannot both start a build.
        """
        async with self._db.transaction() as conn:
            hook = await deploy_hooks.get_any(conn, hook_uuid.lower())
            account_id, tag, branch = hook["account_id"], hook["external_script_id"], hook["branch"]
            await workers.lock(conn, account_id, tag)
            trigger = _trigger_for(await triggers.list_by_worker(conn, account_id, tag), branch)
            queued = await builds.queued_for_branch(conn, trigger["trigger_uuid"], branch)
            if queued is not None:
                return _triggered(queued, already_exists=True)
            since = clock.format_epoch_ms(clock.epoch_ms() - WINDOW_MS)
            if (
                await builds.hook_builds_since(conn, account_id, since, tag) >= PER_WORKER
                or await builds.hook_builds_since(conn, account_id, since) >= PER_ACCOUNT
            ):
                raise DeployHookRateLimited(RETRY_AFTER)
            row = await self._builds.queue(
                conn, trigger, source="api", branch=branch, deploy_hook=hook
            )
            return _triggered(row, already_exists=False)

    @staticmethod
    async def _refuse_taken(
        conn: Connection, account_id: str, tag: str, name: str, hook_uuid: str
    ) -> None:
        """Hook names are unique per Worker (spec §8: 409 12049)."""
        taken = await deploy_hooks.find_by_name(conn, account_id, tag, name)
        if taken is not None and taken["deploy_hook_uuid"] != hook_uuid:
            raise AlreadyExists()
