"""The wire: msgspec Structs with Cloudflare's exact field names, for bodies and results alike.

A Struct attribute, its JSON field and its database column share one name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

ProviderType = Literal["github", "gitlab", "gitlab_internal", "origin"]
PROVIDER_TYPES: tuple[str, ...] = ("github", "gitlab", "gitlab_internal", "origin")


def whole(pattern: str) -> str:
    """`pattern` over the whole string. msgspec matches with re.search, where `$` also matches
    before a final newline ("abc\\n" passed `^[a-z]+$`); `(?![\\s\\S])` is the end in Python
    and in the OpenAPI document's ECMA-262 regexes alike."""
    return f"^(?:{pattern})(?![\\s\\S])"


# One line of text: no C0 control character and no DEL (NUL, newlines, escape sequences), which
# no name needs and which corrupt logs, terminals and git arguments; any other Unicode is fine.
SINGLE_LINE = whole(r"[^\x00-\x1f\x7f]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # what SINGLE_LINE refuses, for values checked later
# A name or id sent by a client: never empty, never unbounded, one line.
Name = Annotated[str, Meta(min_length=1, max_length=256, pattern=SINGLE_LINE)]
Branch = Name  # a git ref cannot hold a control character either


# --- envelope ---------------------------------------------------------------------------------


class ErrorSource(Struct):
    pointer: str


class ErrorItem(Struct, omit_defaults=True):
    code: int
    message: str
    error_chain: list[ErrorItem] | None = None
    source: ErrorSource | None = None


class ResultInfo(Struct):
    page: int
    per_page: int
    count: int
    total_count: int
    total_pages: int
    # Observed on list-builds and build-token lists; Cloudflare's MCP client requires it there.
    next_page: bool | UnsetType = UNSET


class Envelope(Struct):
    success: bool
    errors: list[ErrorItem]
    messages: list[Any]
    result: Any
    result_info: ResultInfo | UnsetType = UNSET


# --- repository connections (spec §3.1) -------------------------------------------------------


class UpsertRepoConnectionRequest(Struct, forbid_unknown_fields=True):
    provider_account_id: Name
    provider_account_name: Name
    provider_type: ProviderType
    repo_id: Name
    repo_name: Name


class RepoConnection(Struct):
    repo_connection_uuid: str
    provider_type: str
    provider_account_id: str
    provider_account_name: str
    repo_id: str
    repo_name: str
    created_on: str
    modified_on: str
    deleted_on: str | None


class EmbeddedRepoConnection(RepoConnection):
    """The connection as embedded in a trigger: the same fields plus `grant_id` (D17)."""

    grant_id: str | None = None


# --- grants (D21; an extension): Cloudflare's Git app installation, its `grant_id` ---------------


class GrantRepository(Struct):
    repo_id: str
    repo_name: str


class Grant(Struct):
    """The provider account (owner) whose repositories an account may connect: all of them, or
    those listed (`repository_selection` as in GitHub's installation object)."""

    grant_id: str
    provider_type: str
    provider_account_id: str
    provider_account_name: str
    repository_selection: Literal["all", "selected"]
    repositories: list[GrantRepository]  # [] when the selection is "all"
    created_on: str


# --- build tokens (spec §4) ---------------------------------------------------------------------


class CreateBuildTokenRequest(Struct, forbid_unknown_fields=True):
    build_token_name: Name
    build_token_secret: Annotated[str, Meta(min_length=1, max_length=4096)]
    cloudflare_token_id: Name


class BuildToken(Struct):
    build_token_uuid: str
    build_token_name: str
    cloudflare_token_id: str
    owner_type: str


# --- triggers (spec §5, D17) --------------------------------------------------------------------

UUID_PATTERN = whole("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
Uuid = Annotated[str, Meta(pattern=UUID_PATTERN)]
WorkerTag = Annotated[str, Meta(pattern=whole("[0-9a-f]{32}"))]
# Branch and path patterns and root directories are single-line too: a newline in a branch
# forged lines in build logs. Commands may span lines (they are shell scripts).
Pattern = Annotated[str, Meta(min_length=1, max_length=256, pattern=SINGLE_LINE)]
Patterns = Annotated[list[Pattern], Meta(max_length=100)]
Command = Annotated[str, Meta(max_length=10_000)]
Directory = Annotated[str, Meta(min_length=1, max_length=1024, pattern=SINGLE_LINE)]


class CreateTriggerRequest(Struct, forbid_unknown_fields=True):
    external_script_id: WorkerTag
    repo_connection_uuid: Uuid
    build_token_uuid: Uuid
    trigger_name: Name
    branch_includes: Patterns
    build_command: Command
    deploy_command: Command
    root_directory: Directory = "/"
    branch_excludes: Patterns = []
    path_includes: Patterns = msgspec.field(default_factory=lambda: ["*"])
    path_excludes: Patterns = []
    build_caching_enabled: bool = True


class UpdateTriggerRequest(Struct, forbid_unknown_fields=True):
    trigger_name: Name | UnsetType = UNSET
    build_command: Command | UnsetType = UNSET
    deploy_command: Command | UnsetType = UNSET
    root_directory: Directory | UnsetType = UNSET
    branch_includes: Patterns | UnsetType = UNSET
    branch_excludes: Patterns | UnsetType = UNSET
    path_includes: Patterns | UnsetType = UNSET
    path_excludes: Patterns | UnsetType = UNSET
    build_caching_enabled: bool | UnsetType = UNSET
    build_token_uuid: Uuid | UnsetType = UNSET
    # Not updatable; accepted when unchanged, so a client may send back what it read (D17).
    external_script_id: str | UnsetType = UNSET
    repo_connection_uuid: str | UnsetType = UNSET


class TriggerSnapshot(Struct):
    """A trigger as embedded in a build: no build-token fields."""

    trigger_uuid: str
    trigger_name: str
    external_script_id: str
    build_command: str
    deploy_command: str
    root_directory: str
    branch_includes: list[str]
    branch_excludes: list[str]
    path_includes: list[str]
    path_excludes: list[str]
    build_caching_enabled: bool
    repo_connection: EmbeddedRepoConnection
    created_on: str
    modified_on: str
    deleted_on: str | None


class Trigger(Struct):
    trigger_uuid: str
    trigger_name: str
    external_script_id: str
    build_command: str
    deploy_command: str
    root_directory: str
    branch_includes: list[str]
    branch_excludes: list[str]
    path_includes: list[str]
    path_excludes: list[str]
    build_caching_enabled: bool
    build_token_uuid: str
    build_token_name: str
    repo_connection: EmbeddedRepoConnection
    created_on: str
    modified_on: str
    deleted_on: str | None


# --- build variables (spec §5.6, D14) ------------------------------------------------------------

VARIABLE_NAME = whole("[A-Za-z_][A-Za-z0-9_]*")
MAX_VARIABLES = 64
MAX_VALUE_CHARS = 5000
VariableName = Annotated[str, Meta(pattern=VARIABLE_NAME, max_length=256)]
VariableValue = Annotated[str, Meta(max_length=MAX_VALUE_CHARS)]


class VariableInput(Struct, forbid_unknown_fields=True):
    # null keeps the stored value: a client may PATCH back what it read (secrets read as null).
    value: VariableValue | None = None
    is_secret: bool = False


class ListedVariable(Struct, forbid_unknown_fields=True):
    """The guide's list form: {"variables": [{key, value, type: "text"|"secret"}]}."""

    key: VariableName
    value: VariableValue
    type: Literal["text", "secret"] = "text"


class VariablesList(Struct, forbid_unknown_fields=True):
    variables: list[ListedVariable]


VariablesMap = dict[VariableName, VariableInput | None]


class Variable(Struct):
    value: str | None
    is_secret: bool
    created_on: str


# --- builds (spec §6, D12, D13, D18) -------------------------------------------------------------


class SeedRepoFile(Struct, forbid_unknown_fields=True):
    filename: Name
    content: str
    isBase64: bool = False
    replace: str | None = None


class SeedRepo(Struct, forbid_unknown_fields=True):
    owner: Name
    repository: Name
    provider: Literal["github", "gitlab"]
    branch: Annotated[str, Meta(pattern=SINGLE_LINE)] | None = None
    path: Annotated[str, Meta(pattern=SINGLE_LINE)] | None = None
    files: Annotated[list[SeedRepoFile], Meta(max_length=2)] = []


class CreateBuildRequest(Struct, forbid_unknown_fields=True):
    branch: Branch | None = None
    commit_hash: Annotated[str, Meta(pattern=whole("[0-9a-fA-F]{4,64}"))] | None = None
    seed_repo: SeedRepo | None = None


class BuildTriggerMetadata(Struct):
    build_trigger_source: str
    branch: str
    commit_hash: str
    commit_message: str
    author: str
    build_command: str
    deploy_command: str
    root_directory: str
    build_token_uuid: str
    build_token_name: str
    repo_name: str
    provider_account_name: str
    provider_type: str
    environment_variables: dict[str, Variable]


class PullRequest(Struct):
    created_on: str
    pull_request_url: str
    # G3, optional and not nullable: sent only once the pull request is closed.
    closed_on: str | UnsetType = UNSET


class DeployHookRef(Struct):
    deploy_hook_name: str


class Build(Struct):
    build_uuid: str
    status: str
    build_outcome: str | None
    created_on: str
    modified_on: str
    initializing_on: str | None
    running_on: str | None
    stopped_on: str | None
    build_trigger_metadata: BuildTriggerMetadata
    trigger: TriggerSnapshot
    pull_request: PullRequest | None
    # Present only when there is one (G3 fields, not nullable in the schema).
    deploy_hook: DeployHookRef | UnsetType = UNSET
    preview_url: str | UnsetType = UNSET


class CanceledBuild(Struct):
    build_uuid: str
    build_outcome: str | None
    stopped_on: str | None


class BuildsMap(Struct):
    builds: dict[str, Build]


class LogEvent(Struct):
    type: str
    started_on: str | None
    ended_on: str | None


class BuildLogs(Struct):
    cursor: str
    truncated: bool
    lines: list[tuple[int, str]]
    events: list[LogEvent]


class AccountLimits(Struct):
    has_reached_build_minutes_limit: bool | None
    build_minutes_refresh_on: str | None


# --- identity (conventions §4) -----------------------------------------------------------------


class TokenVerification(Struct):
    id: str
    status: str
    expires_on: str | UnsetType = UNSET
    not_before: str | UnsetType = UNSET


class VerifyMessage(Struct):
    code: int
    message: str
    type: None = None


class AccountSettings(Struct):
    enforce_twofactor: bool = False
    api_access_enabled: bool | None = None
    access_approval_expiry: str | None = None
    use_account_custom_ns_by_default: bool = False


class Account(Struct):
    id: str
    name: str
    type: str
    settings: AccountSettings
    created_on: str


# --- paging -----------------------------------------------------------------------------------

# A page number a database can offset by (SQLite and PostgreSQL offsets are 64-bit): past the
# end is still 200 with `result: []` (D10), past 2**31 - 1 is 400 12013 (found by fuzzing).
MAX_PAGE = 2**31 - 1
PageNumber = Annotated[int, Meta(ge=1, le=MAX_PAGE)]


class Page(Struct, frozen=True):
    """A requested page: 1-based number and size (D10)."""

    page: int = 1
    per_page: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def result_info(page: Page, count: int, total_count: int, *, next_page: bool = False) -> ResultInfo:
    total_pages = (total_count + page.per_page - 1) // page.per_page
    info = ResultInfo(
        page=page.page,
        per_page=page.per_page,
        count=count,
        total_count=total_count,
        total_pages=total_pages,
    )
    if next_page:
        info.next_page = page.page < total_pages
    return info


encoder = msgspec.json.Encoder()


# --- deploy hooks (spec §8) ----------------------------------------------------------------------

DeployHookName = Annotated[str, Meta(min_length=1, max_length=58, pattern=SINGLE_LINE)]


class DeployHookRequest(Struct, forbid_unknown_fields=True):
    """Body of POST and PUT (a full replace) …/deploy_hooks."""

    deploy_hook_name: DeployHookName
    # Trimmed first, as Cloudflare does (" main\n" is main), then one line: services/deploy_hooks.
    branch: Annotated[str, Meta(min_length=1, max_length=256)]


class DeployHook(Struct):
    deploy_hook_uuid: str
    deploy_hook_name: str
    branch: str
    external_script_id: str  # the Worker's tag, though the path names the Worker
    created_on: str
    modified_on: str


class LatestBuild(Struct):
    created_on: str


class DetailedDeployHook(DeployHook):
    """A list item: the hook and when it last started a build."""

    latest_build: LatestBuild | None


class TriggeredDeployHook(Struct):
    build_uuid: str
    created_on: str
    status: str
    already_exists: bool  # a queued build of that branch was there already; none was started


# --- Worker build configuration (spec §1b, §9) ---------------------------------------------------

WorkerProviderType = Literal["github", "gitlab", "gitlab_internal"]


class WorkerGitRepositoryInput(Struct, forbid_unknown_fields=True):
    provider_type: WorkerProviderType
    provider_account_id: Name
    provider_account_name: Name
    repo_id: Name
    repo_name: Name
    branch: Branch
    grant_id: Name | None = None  # gitlab_internal


class WorkerBuildSettingsInput(Struct, forbid_unknown_fields=True):
    """production_settings (and previews_base_config) of POST /builds/workers."""

    build_command: Command
    deploy_command: Command
    build_token_uuid: Uuid
    root_directory: Directory = "/"
    path_includes: Patterns = msgspec.field(default_factory=lambda: ["*"])
    path_excludes: Patterns = []
    build_caching_enabled: bool = True
    environment_variables: VariablesMap = {}


class CreateWorkerBuildRequest(Struct, forbid_unknown_fields=True):
    script_tag: WorkerTag
    git_repository: WorkerGitRepositoryInput
    production_settings: WorkerBuildSettingsInput
    # Observed in real clients, in no spec (§9.2).
    previews_enabled: bool = False
    previews_base_config: WorkerBuildSettingsInput | None = None


class UpdateWorkerBuildSettingsInput(Struct, forbid_unknown_fields=True):
    build_command: Command | UnsetType = UNSET
    deploy_command: Command | UnsetType = UNSET
    build_token_uuid: Uuid | UnsetType = UNSET
    root_directory: Directory | UnsetType = UNSET
    path_includes: Patterns | UnsetType = UNSET
    path_excludes: Patterns | UnsetType = UNSET
    build_caching_enabled: bool | UnsetType = UNSET
    environment_variables: VariablesMap | UnsetType = UNSET  # a null entry deletes


class UpdateWorkerGitRepositoryInput(Struct, forbid_unknown_fields=True):
    branch: Branch | UnsetType = UNSET


class UpdateWorkerBuildRequest(Struct, forbid_unknown_fields=True):
    git_repository: UpdateWorkerGitRepositoryInput | UnsetType = UNSET
    production_settings: UpdateWorkerBuildSettingsInput | UnsetType = UNSET
    previews_enabled: bool | UnsetType = UNSET
    previews_base_config: UpdateWorkerBuildSettingsInput | UnsetType = UNSET


class WorkerGitRepository(Struct):
    provider_type: str
    provider_account_id: str
    provider_account_name: str
    repo_id: str
    repo_name: str
    branch: str
    grant_id: str | None


class WorkerBuildSettings(Struct):
    build_command: str
    deploy_command: str
    build_token_uuid: str
    root_directory: str
    path_includes: list[str]
    path_excludes: list[str]
    build_caching_enabled: bool
    environment_variables: dict[str, Variable]


class WorkerBuild(Struct):
    script_tag: str
    git_repository: WorkerGitRepository
    production_settings: WorkerBuildSettings
    previews_enabled: bool
    # Always sent (issue 13: live Cloudflare does): the Previews base config, else the legacy
    # non-production trigger's settings, else the base config switching Previews on would make.
    previews_base_config: WorkerBuildSettings


# --- config autofill (spec §3.3) ---------------------------------------------------------------

# The spec's enum; buildsd detects the first four from lockfiles ("uv" is never proposed).
PackageManager = Literal["npm", "yarn", "pnpm", "bun", "uv"]


class ConfigAutofill(Struct):
    """Build settings proposed from a branch of a connected repository; every key always sent."""

    config_file: str | None
    default_worker_name: str | None
    env_worker_names: dict[str, str] | None
    package_manager: PackageManager
    scripts: dict[str, str] | None


# --- push webhooks (buildsd's own, docs/webhooks.md) ----------------------------------------------


class WebhookAck(Struct):
    """The answer to a delivery: given fast, before it is matched to triggers."""

    delivery_uuid: str  # buildsd's id of the stored delivery
    delivery_id: str  # the provider's (X-GitHub-Delivery …), or sha256 of the body
    status: Literal["accepted", "duplicate", "ignored"]
    reason: str


class WebhookDecision(Struct):
    """What one trigger made of a delivery, and the rule that decided."""

    trigger_uuid: str
    trigger_name: str
    external_script_id: str
    # `closed`: a closed pull request set closed_on on this trigger's builds of it (no build).
    decision: Literal["built", "skipped", "not_matched", "closed"]
    rule: str
    pattern: str | None
    reason: str
    build_uuid: str | None


class WebhookDelivery(Struct):
    delivery_uuid: str
    delivery_id: str
    provider: str
    event: str
    repository: str
    branch: str
    commit_hash: str
    received_on: str
    processed_on: str | None
    status: str
    reason: str
    decisions: list[WebhookDecision]  # this account's triggers only


ChangedFile = Annotated[str, Meta(min_length=1, max_length=4096)]


class ExplainRequest(Struct, forbid_unknown_fields=True):
    """A push as the path filters see it: its branch, its changed files, its commit count."""

    branch: Branch
    changed_files: Annotated[list[ChangedFile], Meta(max_length=100_000)]
    commit_count: Annotated[int, Meta(ge=1, le=1_000_000)] = 1


class Explanation(Struct):
    would_build: bool
    decision: Literal["built", "skipped", "not_matched"]  # what a delivery would record
    rule: str
    pattern: str | None
    reason: str


# --- audit log (GET /accounts/{account_id}/audit_logs, docs/compatibility.md) --------------------


class AuditLogAction(Struct):
    type: str  # create | update | delete | upsert | cancel | purge | replay
    result: bool  # false when the write was refused or failed


class AuditLogActor(Struct):
    id: str  # the user's id; "" when no user acted (a deploy hook)
    email: str
    ip: str
    type: Literal["user", "admin", "Cloudflare"]


class AuditLogOwner(Struct):
    id: str  # the account


class AuditLogResource(Struct):
    id: str
    type: str


class AuditLog(Struct):
    """One entry in Cloudflare's v4 audit-log shape. `newValue`/`oldValue` are never sent:
    buildsd records ids and names only, never the values written (they may be secrets)."""

    id: str
    action: AuditLogAction
    actor: AuditLogActor
    interface: str
    metadata: dict[str, Any]
    owner: AuditLogOwner
    resource: AuditLogResource
    when: str


class ForgeUpdate(Struct):
    """One build state change queued for the forge and its delivery (extension, D29)."""

    id: int
    forge: str
    status: str
    build_outcome: str | None
    created_on: str
    state: str  # pending | delivered | failed (given up)
    attempts: int
    next_attempt_on: str
    delivered_on: str | None
    last_error: str | None


BuildEvent = Literal["build.started", "build.succeeded", "build.failed", "build.canceled"]


class CreateEventSubscriptionRequest(Struct, forbid_unknown_fields=True):
    name: Name
    url: Annotated[str, Meta(min_length=1, max_length=2048, pattern=whole(r"https?://\S+"))]
    events: Annotated[list[BuildEvent], Meta(min_length=1, max_length=4)]
    enabled: bool = True


class EventSubscription(Struct):
    """Where an account's build events go (extension, D29); `secret` only in the create
    answer (Standard Webhooks `whsec_…`), null everywhere else."""

    id: str
    name: str
    url: str
    events: list[str]
    enabled: bool
    created_on: str
    secret: str | None = None


class EventDelivery(Struct):
    """One event sent (or being sent) to a subscription: the delivery ledger."""

    id: int
    message_id: str
    build_uuid: str
    event_type: str
    created_on: str
    state: str
    attempts: int
    next_attempt_on: str
    delivered_on: str | None
    last_error: str | None
