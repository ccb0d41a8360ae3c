"""A Worker's versions and deployments (D24), as `wrangler versions upload` and `wrangler
deployments` call them: a version is stored, a deployment sends traffic shares to versions."""

from __future__ import annotations

from typing import Any

import msgspec

from buildsd.db import Database, Row
from buildsd.errors import InvalidWorkerUpload, WorkerNotFound
from buildsd.services.identity import Caller
from buildsd.services.scripts import Scripts, Upload, author_of
from buildsd.store import worker_versions
from buildsd.wire import Page
from buildsd.wire_workers import (
    CreateDeploymentRequest,
    Deployment,
    DeploymentVersion,
    Version,
    VersionMetadata,
    VersionResources,
    VersionRuntime,
    VersionScript,
)

UUID_LENGTH = 36


def to_version(row: Row) -> Version:
    settings: dict[str, Any] = msgspec.json.decode(row["metadata"])
    return Version(
        id=row["id"],
        number=row["number"],
        metadata=VersionMetadata(
            author_email=row["author_email"],
            author_id="",
            created_on=row["created_on"],
            modified_on=row["created_on"],
            source=row["source"],
        ),
        annotations=msgspec.json.decode(row["annotations"]),
        resources=VersionResources(
            script=VersionScript(
                etag=row["etag"],
                handlers=settings.get("handlers", []),
                last_deployed_from=row["source"],
            ),
            script_runtime=VersionRuntime(
                compatibility_date=settings.get("compatibility_date", ""),
                compatibility_flags=settings.get("compatibility_flags", []),
                usage_model=settings.get("usage_model", "standard"),
                limits=settings.get("limits", {}),
            ),
            bindings=settings.get("bindings", []),
        ),
    )


def to_deployment(row: Row) -> Deployment:
    return Deployment(
        id=row["id"],
        created_on=row["created_on"],
        source=row["source"],
        strategy=row["strategy"],
        author_email=row["author_email"],
        versions=msgspec.json.decode(row["versions"], type=list[DeploymentVersion]),
        annotations=msgspec.json.decode(row["annotations"]),
    )


class Deployments:
    def __init__(self, db: Database, scripts: Scripts) -> None:
        self._db = db
        self._scripts = scripts

    async def upload_version(
        self, account_id: str, name: str, upload: Upload, caller: Caller | None, source: str
    ) -> Version:
        """POST /workers/scripts/{name}/versions: stored, not deployed."""
        async with self._db.transaction() as conn:
            row = await self._scripts.locked(conn, account_id, name)
            email = await author_of(conn, caller)
            version = await self._scripts.add_version(conn, row, upload, email, source)
            if not row["script"]:  # a Worker's first version sets what it shows until deployed
                await self._scripts.show(conn, row, version, None, version["created_on"])
        return to_version(version)

    async def versions(self, account_id: str, name: str, page: Page) -> tuple[list[Version], int]:
        async with self._db.connection() as conn:
            row = await self._scripts.worker(conn, account_id, name)
            rows, total = await worker_versions.versions_page(conn, row["tag"], page)
        return [to_version(item) for item in rows], total

    async def version(self, account_id: str, name: str, version_id: str) -> Version:
        async with self._db.connection() as conn:
            row = await self._scripts.worker(conn, account_id, name)
            found = await worker_versions.find_version(conn, row["tag"], version_id.lower())
        if found is None:
            raise WorkerNotFound("Version not found")
        return to_version(found)

    async def create(
        self,
        account_id: str,
        name: str,
        body: CreateDeploymentRequest,
        caller: Caller | None,
        source: str,
    ) -> Deployment:
        """POST /workers/scripts/{name}/deployments: the shares must name this Worker's
        versions, each once, and add up to 100."""
        ids = [item.version_id.lower() for item in body.versions]
        if len(set(ids)) != len(ids):
            raise InvalidWorkerUpload("a version appears twice", pointer="/versions")
        if abs(sum(item.percentage for item in body.versions) - 100) > 1e-9:
            raise InvalidWorkerUpload("the percentages must add up to 100", pointer="/versions")
        annotations = body.annotations if isinstance(body.annotations, dict) else {}
        async with self._db.transaction() as conn:
            row = await self._scripts.locked(conn, account_id, name)
            shares: list[tuple[Row, float]] = []
            for index, (version_id, item) in enumerate(zip(ids, body.versions, strict=True)):
                version = await worker_versions.find_version(conn, row["tag"], version_id)
                if version is None:
                    raise InvalidWorkerUpload(
                        f"version {version_id[:UUID_LENGTH]} is not a version of this Worker",
                        pointer=f"/versions/{index}/version_id",
                    )
                shares.append((version, item.percentage))
            email = await author_of(conn, caller)
            deployment, _ = await self._scripts.deploy(
                conn, row, shares, annotations, email, source
            )
        return to_deployment(deployment)

    async def list_(self, account_id: str, name: str) -> list[Deployment]:
        async with self._db.connection() as conn:
            row = await self._scripts.worker(conn, account_id, name)
            rows = await worker_versions.deployments(conn, row["tag"])
        return [to_deployment(item) for item in rows]

    async def get(self, account_id: str, name: str, deployment_id: str) -> Deployment:
        async with self._db.connection() as conn:
            row = await self._scripts.worker(conn, account_id, name)
            found = await worker_versions.find_deployment(conn, row["tag"], deployment_id.lower())
        if found is None:
            raise WorkerNotFound("Deployment not found")
        return to_deployment(found)
