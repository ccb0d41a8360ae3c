"""The wire of Worker Previews (`…/builds/workers/{script_tag}/previews…`, migrate_to_previews).

Cloudflare's reference names the operations and what a Preview holds ("the tracked branch, the
automation flags, and the build settings") but no field list reached us: the names here are
buildsd's, chosen to match the Worker build config's, and listed in docs/compatibility.md.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from buildsd.wire import Branch, UpdateWorkerBuildSettingsInput, WorkerBuildSettings

# What Cloudflare runs for a Preview when nothing else is set (its configuration docs).
PREVIEW_COMMAND = "npx wrangler preview"


class MigrateToPreviewsRequest(Struct, forbid_unknown_fields=True):
    """POST …/migrate_to_previews: the Previews' deploy command (the legacy trigger's other
    settings become the base config)."""

    deploy_command: Annotated[str, Meta(min_length=1, max_length=512)]


class Preview(Struct):
    preview_id: str
    script_tag: str
    branch: str  # the tracked branch
    delete_on_branch_delete: bool  # the automation flag: deleted with its branch
    build_settings: WorkerBuildSettings  # what its builds run now
    preview_url: str | None  # of its latest successful build that printed one
    last_deployed_on: str | None  # when its latest successful build stopped
    latest_build_uuid: str | None
    created_on: str
    modified_on: str


class UpdatePreviewRequest(Struct, forbid_unknown_fields=True):
    branch: Branch | UnsetType = UNSET
    delete_on_branch_delete: bool | UnsetType = UNSET
    build_settings: UpdateWorkerBuildSettingsInput | UnsetType = UNSET
