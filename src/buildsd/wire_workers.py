"""The wire of the Workers platform calls around Builds (scripts, versions, deployments, users).

Field names are Cloudflare's (its API reference and wrangler's types); buildsd stores what an
upload says and runs no Worker, so what only running could tell (startup time) is a constant.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from buildsd.wire import whole

# Cloudflare's rule for script names: lowercase letters, digits, `-` and `_`, at most 63.
SCRIPT_NAME = whole("[a-z0-9_][a-z0-9_-]{0,62}")
# A workers.dev subdomain is one DNS label.
SubdomainName = Annotated[str, Meta(pattern=whole("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"))]


class NamedHandler(Struct):
    name: str
    handlers: list[str]


class Script(Struct):
    """One Worker as GET /workers/scripts lists it (`id` is its name, `tag` its fixed id)."""

    id: str
    tag: str
    etag: str
    created_on: str
    modified_on: str
    compatibility_date: str
    compatibility_flags: list[str]
    usage_model: str
    handlers: list[str]
    named_handlers: list[NamedHandler]
    has_assets: bool
    has_modules: bool
    logpush: bool
    tags: list[str]
    tail_consumers: list[dict[str, Any]] | None
    observability: dict[str, Any] | None
    last_deployed_from: str
    deployment_id: str | None
    placement: dict[str, Any]


class UploadedScript(Script):
    """PUT /workers/scripts/{name}: the Worker, plus what Cloudflare learns by starting it."""

    startup_time_ms: int = 0
    entry_point: str = ""


class ScriptSettings(Struct):
    """GET/PATCH /workers/scripts/{name}/script-settings: what no version carries."""

    logpush: bool
    observability: dict[str, Any] | None
    tags: list[str]
    tail_consumers: list[dict[str, Any]] | None


class ScriptSettingsPatch(Struct, forbid_unknown_fields=True):
    logpush: bool | UnsetType = UNSET
    observability: dict[str, Any] | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET
    tail_consumers: list[dict[str, Any]] | UnsetType | None = UNSET


class WorkerSettings(Struct):
    """GET/PATCH /workers/scripts/{name}/settings: the script's and its latest version's."""

    bindings: list[dict[str, Any]]
    compatibility_date: str
    compatibility_flags: list[str]
    limits: dict[str, Any]
    logpush: bool
    observability: dict[str, Any] | None
    placement: dict[str, Any]
    tags: list[str]
    tail_consumers: list[dict[str, Any]] | None
    usage_model: str


class Environment(Struct):
    environment: str
    created_on: str
    modified_on: str


class DefaultEnvironment(Struct):
    environment: str
    created_on: str
    modified_on: str
    script: Script


class Service(Struct):
    """GET /workers/services/{name}: wrangler reads default_environment.script.tag."""

    id: str
    default_environment: DefaultEnvironment
    created_on: str
    modified_on: str
    usage_model: str
    environments: list[Environment]


class Subdomain(Struct, forbid_unknown_fields=True):
    subdomain: SubdomainName


class ScriptSubdomain(Struct):
    enabled: bool
    previews_enabled: bool


class ScriptSubdomainRequest(Struct, forbid_unknown_fields=True):
    enabled: bool
    previews_enabled: bool | UnsetType = UNSET


class VersionMetadata(Struct, rename={"has_preview": "hasPreview"}):
    author_email: str
    author_id: str
    created_on: str
    modified_on: str
    source: str
    has_preview: bool = False


class VersionScript(Struct):
    etag: str
    handlers: list[str]
    last_deployed_from: str


class VersionRuntime(Struct):
    compatibility_date: str
    compatibility_flags: list[str]
    usage_model: str
    limits: dict[str, Any]


class VersionResources(Struct):
    script: VersionScript
    script_runtime: VersionRuntime
    bindings: list[dict[str, Any]]


class Version(Struct):
    id: str
    number: int
    metadata: VersionMetadata
    annotations: dict[str, str]
    resources: VersionResources
    startup_time_ms: int = 0


class VersionList(Struct):
    items: list[Version]


Percentage = Annotated[float, Meta(ge=0, le=100)]


class DeploymentVersion(Struct, forbid_unknown_fields=True):
    version_id: str
    percentage: Percentage


class CreateDeploymentRequest(Struct, forbid_unknown_fields=True):
    strategy: Literal["percentage"]
    versions: Annotated[list[DeploymentVersion], Meta(min_length=1, max_length=2)]
    annotations: dict[str, str] | UnsetType = UNSET


class Deployment(Struct):
    id: str
    created_on: str
    source: str
    strategy: str
    author_email: str
    versions: list[DeploymentVersion]
    annotations: dict[str, str]


class DeploymentList(Struct):
    deployments: list[Deployment]


class User(Struct):
    """GET /user: who the credential belongs to."""

    id: str
    email: str
    first_name: str | None
    last_name: str | None
    username: str
    telephone: str | None
    country: str | None
    zipcode: str | None
    created_on: str
    modified_on: str
    two_factor_authentication_enabled: bool
    suspended: bool


class MembershipAccount(Struct):
    id: str
    name: str


class Membership(Struct):
    """GET /memberships: the accounts the user is a member of."""

    id: str
    account: MembershipAccount
    status: str
    roles: list[str]


class UploadMetadata(Struct):
    """The `metadata` part of a script or version upload (Cloudflare's multipart metadata).

    Fields buildsd does not use (assets, migrations, keep_bindings, ...) are accepted and
    ignored, as they would be by a Worker that never runs.
    """

    main_module: str | UnsetType = UNSET  # ES modules: the part holding the entry module
    body_part: str | UnsetType = UNSET  # service-worker syntax: the part holding the script
    compatibility_date: Annotated[str, Meta(pattern=whole(r"\d{4}-\d{2}-\d{2}"))] | UnsetType = (
        UNSET
    )
    compatibility_flags: list[str] = []
    bindings: list[dict[str, Any]] = []
    usage_model: str = "standard"
    logpush: bool | UnsetType = UNSET
    tags: list[str] | UnsetType | None = UNSET
    tail_consumers: list[dict[str, Any]] | UnsetType | None = UNSET
    observability: dict[str, Any] | UnsetType | None = UNSET
    placement: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    annotations: dict[str, str] = {}
    assets: dict[str, Any] | UnsetType = UNSET
