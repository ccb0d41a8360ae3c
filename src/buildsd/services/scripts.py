"""Workers scripts (D24): list, service, upload, settings, delete, and the workers.dev subdomain.

The Worker is the `workers` row the Builds API knows by tag: an upload under a new name makes
one, an upload under a known name (a Worker made by `buildsd workers create`, or by an earlier
upload) becomes its next version. buildsd stores the script and its metadata; it runs nothing,
so what only running tells (handlers, startup time) is reported as a plain module Worker's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from buildsd import clock
from buildsd.db import Connection, Database, IntegrityError, Row
from buildsd.errors import AlreadyExists, InvalidWorkerUpload, WorkerNotFound
from buildsd.services.identity import Caller
from buildsd.services.multipart import Part, parse
from buildsd.store import accounts, scripts, users, worker_versions, workers
from buildsd.wire import Page
from buildsd.wire_workers import (
    SCRIPT_NAME,
    DefaultEnvironment,
    Environment,
    NamedHandler,
    Script,
    ScriptSettings,
    ScriptSettingsPatch,
    ScriptSubdomain,
    ScriptSubdomainRequest,
    Service,
    Subdomain,
    UploadedScript,
    UploadMetadata,
    WorkerSettings,
)

_NAME = re.compile(SCRIPT_NAME)
# Binding fields that hold a secret: dropped before anything is stored (nothing ever runs
# the Worker, and a secret kept is a secret that can leak).
_SECRET_FIELDS = ("text", "key_base64", "key_jwk")
_SECRET_TYPES = ("secret_text", "secret_key")
PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class Upload:
    """A parsed upload: its metadata, the script state it sets, and its files."""

    metadata: UploadMetadata
    settings: dict[str, Any]  # the version's: compatibility, bindings, handlers, ...
    files: list[Part]
    etag: str


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidWorkerUpload(
            f"{name[:80]!r}: a Worker name is 1-63 lowercase letters, digits, '-' or '_'"
        )


def _bindings(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in binding.items() if k not in _SECRET_FIELDS}
        if binding.get("type") in _SECRET_TYPES
        else binding
        for binding in given
    ]


def read_upload(body: bytes, content_type: str) -> Upload:
    """The parts of a multipart Worker upload, checked: a metadata part naming its entry part."""
    parts = parse(body, content_type)
    found = [part for part in parts if part.name == "metadata"]
    if not found:
        raise InvalidWorkerUpload("the upload has no `metadata` part")
    try:
        metadata = msgspec.json.decode(found[0].content, type=UploadMetadata)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidWorkerUpload(f"the metadata part: {exc}") from exc
    files = [part for part in parts if part.name != "metadata"]
    names = {part.name for part in files}
    if isinstance(metadata.main_module, str):
        entry, modules = metadata.main_module, True
    elif isinstance(metadata.body_part, str):
        entry, modules = metadata.body_part, False
    else:
        raise InvalidWorkerUpload(
            "the metadata names no main_module (ES modules) or body_part (service worker)"
        )
    if entry not in names:
        raise InvalidWorkerUpload(f"the metadata's entry {entry!r} names no part of the upload")
    digest = hashlib.sha256()
    for part in sorted(files, key=lambda part: part.name):
        # Three updates, not one of a concatenation: that would copy a 1 MiB module once more.
        digest.update(part.name.encode())
        digest.update(b"\0")
        digest.update(part.content)
    settings = {
        "compatibility_date": metadata.compatibility_date or "",
        "compatibility_flags": metadata.compatibility_flags,
        "usage_model": metadata.usage_model,
        "bindings": _bindings(metadata.bindings),
        "limits": metadata.limits,
        "placement": metadata.placement,
        "entry_point": entry,
        "has_modules": modules,
        "has_assets": isinstance(metadata.assets, dict),
        # Cloudflare learns these by starting the Worker; buildsd starts nothing.
        "handlers": ["fetch"],
        "named_handlers": [],
    }
    return Upload(metadata=metadata, settings=settings, files=files, etag=digest.hexdigest())


def script_state(row: Row) -> dict[str, Any]:
    """The Worker's script JSON; a Worker with no upload yet has the defaults."""
    state: dict[str, Any] = {
        "compatibility_date": "",
        "compatibility_flags": [],
        "usage_model": "standard",
        "bindings": [],
        "limits": {},
        "placement": {},
        "entry_point": "",
        "has_modules": False,
        "has_assets": False,
        "handlers": [],
        "named_handlers": [],
        "logpush": False,
        "tags": [],
        "tail_consumers": None,
        "observability": None,
        # Nothing was uploaded yet, by the API or anyone: "api" made wrangler's first deploy warn
        # of script-API edits it would overwrite and ask whether to continue.
        "last_deployed_from": "wrangler",
    }
    if row["script"]:
        state.update(msgspec.json.decode(row["script"]))
    return state


def to_script(row: Row) -> Script:
    state = script_state(row)
    return Script(
        id=row["name"],
        tag=row["tag"],
        etag=row["etag"] or "",
        created_on=row["created_on"],
        modified_on=row["modified_on"] or row["created_on"],
        compatibility_date=state["compatibility_date"],
        compatibility_flags=state["compatibility_flags"],
        usage_model=state["usage_model"],
        handlers=state["handlers"],
        named_handlers=[NamedHandler(**item) for item in state["named_handlers"]],
        has_assets=state["has_assets"],
        has_modules=state["has_modules"],
        logpush=state["logpush"],
        tags=state["tags"] or [],
        tail_consumers=state["tail_consumers"],
        observability=state["observability"],
        last_deployed_from=state["last_deployed_from"],
        deployment_id=row["deployment_id"],
        placement=state["placement"],
    )


def source_of(user_agent: str) -> str:
    """Where an upload came from, as Cloudflare records it (wrangler, or any other client)."""
    return "wrangler" if user_agent.lower().startswith("wrangler") else "api"


def _unset_to(value: Any, default: Any) -> Any:
    return default if value is msgspec.UNSET else value


async def author_of(conn: Connection, caller: Caller | None) -> str:
    """The email of the person behind a credential; "" for an account token, which has none."""
    if caller is None or caller.user_id is None:
        return ""
    user = await users.find(conn, caller.user_id)
    return str(user["email"]) if user is not None else ""


def default_subdomain(account_id: str) -> str:
    """The subdomain an account has before it PUTs one (a fresh Cloudflare account has none;
    wrangler would then stop and ask, so buildsd answers one that is unique per account)."""
    return f"buildsd-{account_id[:12]}"


class Scripts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def worker(self, conn: Connection, account_id: str, name: str) -> Row:
        row = await scripts.find(conn, account_id, name) if _NAME.match(name) else None
        if row is None:
            raise WorkerNotFound()
        return row

    async def locked(self, conn: Connection, account_id: str, name: str) -> Row:
        """The Worker for a write: its row locked until the transaction ends, then read (so as
        the last write left it). A delete and the writes that add to a Worker (a version, a
        deployment) then run one after the other: on PostgreSQL a version inserted while a
        delete ran met its foreign key (IntegrityError, a 500) on one side or the other."""
        row = await self._locked(conn, account_id, name)
        if row is None:
            raise WorkerNotFound()
        return row

    async def _locked(self, conn: Connection, account_id: str, name: str) -> Row | None:
        if not _NAME.match(name) or not await scripts.lock(conn, account_id, name):
            return None
        return await scripts.find(conn, account_id, name)

    async def page(self, account_id: str, page: Page) -> tuple[list[Script], int]:
        async with self._db.connection() as conn:
            rows = await scripts.page(conn, account_id, page)
            total = await scripts.count(conn, account_id)
        return [to_script(row) for row in rows], total

    async def service(self, account_id: str, name: str) -> Service:
        async with self._db.connection() as conn:
            row = await self.worker(conn, account_id, name)
        script = to_script(row)
        return Service(
            id=script.id,
            default_environment=DefaultEnvironment(
                environment=PRODUCTION,
                created_on=script.created_on,
                modified_on=script.modified_on,
                script=script,
            ),
            created_on=script.created_on,
            modified_on=script.modified_on,
            usage_model=script.usage_model,
            environments=[
                Environment(
                    environment=PRODUCTION,
                    created_on=script.created_on,
                    modified_on=script.modified_on,
                )
            ],
        )

    async def upload(
        self, account_id: str, name: str, upload: Upload, caller: Caller | None, source: str
    ) -> UploadedScript:
        """PUT /workers/scripts/{name}: a new version, deployed at once to 100 %."""
        check_name(name)
        async with self._db.transaction() as conn:
            row = await self.ensure(conn, account_id, name)
            email = await author_of(conn, caller)
            version = await self.add_version(conn, row, upload, email, source)
            _, row = await self.deploy(conn, row, [(version, 100.0)], {}, email, source, upload)
        script = to_script(row)
        return UploadedScript(
            **msgspec.structs.asdict(script), entry_point=upload.settings["entry_point"]
        )

    async def ensure(self, conn: Connection, account_id: str, name: str) -> Row:
        """The Worker named `name`, locked (`locked`), made with a new tag if the account has
        none by that name (a row this transaction inserts is its own until it commits)."""
        row = await self._locked(conn, account_id, name)
        if row is not None:
            return row
        if not await accounts.exists(conn, account_id):
            raise WorkerNotFound()
        try:
            await workers.insert(
                conn, account_id=account_id, tag=clock.new_hex32(), name=name, now=clock.now()
            )
        except IntegrityError as exc:  # only a concurrent upload can take the name meanwhile
            raise AlreadyExists(f"a Worker named {name!r} was created meanwhile") from exc
        made = await scripts.find(conn, account_id, name)
        assert made is not None
        return made

    async def add_version(
        self, conn: Connection, row: Row, upload: Upload, author_email: str, source: str
    ) -> Row:
        """Store an upload as the Worker's next version; returns the version's row as stored.
        The caller holds the Worker's lock (`locked`, `ensure`): version numbers in order."""
        settings = {**upload.settings, "last_deployed_from": source}
        version: Row = {
            "id": clock.new_uuid(),
            "account_id": row["account_id"],
            "tag": row["tag"],
            "number": await worker_versions.next_number(conn, row["tag"]),
            "created_on": clock.now(),
            "source": source,
            "author_email": author_email,
            "etag": upload.etag,
            "metadata": msgspec.json.encode(settings).decode(),
            "annotations": msgspec.json.encode(upload.metadata.annotations).decode(),
        }
        await worker_versions.insert_version(conn, **version)
        await worker_versions.insert_parts(
            conn,
            [
                {
                    "version_id": version["id"],
                    "name": part.name,
                    "content_type": part.content_type[:128],
                    "content": part.content,
                }
                for part in upload.files
            ],
        )
        return version

    async def show(
        self,
        conn: Connection,
        row: Row,
        version: Row,
        deployment_id: str | None,
        now: str,
        upload: Upload | None = None,
    ) -> Row:
        """Make the Worker show `version` (its settings and etag); returns the row as it is now.

        `row` is read in this transaction and nothing else wrote the script since, so the new
        state is computed from it rather than read back.
        """
        state = {**script_state(row), **msgspec.json.decode(version["metadata"])}
        if upload is not None:  # a script upload also sets the Worker's own settings
            meta = upload.metadata
            state["logpush"] = _unset_to(meta.logpush, state["logpush"])
            state["tags"] = _unset_to(meta.tags, state["tags"]) or []
            state["tail_consumers"] = _unset_to(meta.tail_consumers, state["tail_consumers"])
            state["observability"] = _unset_to(meta.observability, state["observability"])
        script = msgspec.json.encode(state).decode()
        await scripts.set_script(
            conn,
            tag=row["tag"],
            script=script,
            etag=version["etag"],
            deployment_id=deployment_id,
            now=now,
        )
        return {
            **row,
            "script": script,
            "etag": version["etag"],
            "modified_on": now,
            "deployment_id": deployment_id or row["deployment_id"],
        }

    async def deploy(
        self,
        conn: Connection,
        row: Row,
        shares: list[tuple[Row, float]],
        annotations: dict[str, str],
        author_email: str,
        source: str,
        upload: Upload | None = None,
    ) -> tuple[Row, Row]:
        """A deployment of these versions (rows, percentages); the Worker then shows its largest
        share's version. Returns the deployment's row and the Worker's, as stored."""
        now = clock.now()
        deployment: Row = {
            "id": clock.new_uuid(),
            "account_id": row["account_id"],
            "tag": row["tag"],
            "created_on": now,
            "source": source,
            "strategy": "percentage",
            "author_email": author_email,
            "versions": msgspec.json.encode(
                [{"version_id": v["id"], "percentage": p} for v, p in shares]
            ).decode(),
            "annotations": msgspec.json.encode(annotations).decode(),
            "seq": clock.next_seq(),  # the order of deployments of one millisecond
        }
        await worker_versions.insert_deployment(conn, **deployment)
        leading = max(shares, key=lambda pair: pair[1])[0]
        # Cloudflare's script `deployment_id` is the deployed version's id: wrangler prints an
        # upload's `deployment_id` as its "Current Version ID".
        shown = await self.show(conn, row, leading, leading["id"], now, upload)
        return deployment, shown

    async def delete(self, account_id: str, name: str) -> None:
        async with self._db.transaction() as conn:
            row = await self.locked(conn, account_id, name)
            await scripts.delete(conn, row["tag"])

    # --- settings --------------------------------------------------------------------------

    async def script_settings(self, account_id: str, name: str) -> ScriptSettings:
        async with self._db.connection() as conn:
            state = script_state(await self.worker(conn, account_id, name))
        return _script_settings(state)

    async def patch_script_settings(
        self, account_id: str, name: str, patch: ScriptSettingsPatch
    ) -> ScriptSettings:
        async with self._db.transaction() as conn:
            row = await self.locked(conn, account_id, name)  # an upload's settings not lost
            state = script_state(row)
            for field in ("logpush", "observability", "tags", "tail_consumers"):
                state[field] = _unset_to(getattr(patch, field), state[field])
            state["tags"] = state["tags"] or []
            await scripts.set_settings(
                conn, tag=row["tag"], script=msgspec.json.encode(state).decode(), now=clock.now()
            )
        return _script_settings(state)

    async def settings(self, account_id: str, name: str) -> WorkerSettings:
        async with self._db.connection() as conn:
            state = script_state(await self.worker(conn, account_id, name))
        return WorkerSettings(
            bindings=state["bindings"],
            compatibility_date=state["compatibility_date"],
            compatibility_flags=state["compatibility_flags"],
            limits=state["limits"],
            logpush=state["logpush"],
            observability=state["observability"],
            placement=state["placement"],
            tags=state["tags"] or [],
            tail_consumers=state["tail_consumers"],
            usage_model=state["usage_model"],
        )

    # --- workers.dev ------------------------------------------------------------------------

    async def subdomain(self, account_id: str) -> Subdomain:
        async with self._db.connection() as conn:
            found = await scripts.account_subdomain(conn, account_id)
        return Subdomain(subdomain=found or default_subdomain(account_id))

    async def set_subdomain(self, account_id: str, body: Subdomain) -> Subdomain:
        # The unique constraint decides, not a look first: two accounts claiming one name at
        # once both saw no owner, and the second insert failed as an IntegrityError (a 500).
        try:
            async with self._db.transaction() as conn:
                await scripts.put_subdomain(conn, account_id, body.subdomain)
        except IntegrityError as exc:  # the only unique key left: another account's subdomain
            raise AlreadyExists(f"the subdomain {body.subdomain!r} is taken") from exc
        return body

    async def script_subdomain(self, account_id: str, name: str) -> ScriptSubdomain:
        async with self._db.connection() as conn:
            row = await self.worker(conn, account_id, name)
        return ScriptSubdomain(
            enabled=bool(row["subdomain_enabled"]), previews_enabled=bool(row["previews_enabled"])
        )

    async def set_script_subdomain(
        self, account_id: str, name: str, body: ScriptSubdomainRequest
    ) -> ScriptSubdomain:
        # Cloudflare: previews_enabled follows enabled when it is not given.
        previews = _unset_to(body.previews_enabled, body.enabled)
        async with self._db.transaction() as conn:
            row = await self.worker(conn, account_id, name)
            await scripts.set_subdomain(
                conn, tag=row["tag"], enabled=body.enabled, previews_enabled=previews
            )
        return ScriptSubdomain(enabled=body.enabled, previews_enabled=previews)


def _script_settings(state: dict[str, Any]) -> ScriptSettings:
    return ScriptSettings(
        logpush=state["logpush"],
        observability=state["observability"],
        tags=state["tags"] or [],
        tail_consumers=state["tail_consumers"],
    )
