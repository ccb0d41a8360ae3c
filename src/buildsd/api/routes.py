"""The route table: every operation buildsd serves, with its access and its body and query types."""

from __future__ import annotations

from buildsd.api import (
    audit_logs,
    autofill,
    build_tokens,
    builds,
    deploy_hooks,
    grants,
    health,
    identity,
    metrics,
    repo_connections,
    triggers,
    webhooks,
    worker_builds,
)
from buildsd.api.audit import Audited, variable_keys
from buildsd.api.endpoint import Operation, PageQuery
from buildsd.wire import (
    Account,
    AccountLimits,
    AuditLog,
    Build,
    BuildLogs,
    BuildsMap,
    BuildToken,
    CanceledBuild,
    ConfigAutofill,
    CreateBuildRequest,
    CreateBuildTokenRequest,
    CreateTriggerRequest,
    CreateWorkerBuildRequest,
    DeployHook,
    DeployHookRequest,
    DetailedDeployHook,
    ExplainRequest,
    Explanation,
    Grant,
    RepoConnection,
    TokenVerification,
    Trigger,
    TriggeredDeployHook,
    UpdateTriggerRequest,
    UpdateWorkerBuildRequest,
    UpsertRepoConnectionRequest,
    Variable,
    VariablesMap,
    WebhookDelivery,
    WorkerBuild,
)

V4 = "/client/v4"
ACCOUNT = V4 + "/accounts/{account_id}"
BUILDS = ACCOUNT + "/builds"
CONNECTIONS = BUILDS + "/repos/connections"
AUTOFILL = BUILDS + "/repos/{provider_type}/{provider_account_id}/{repo_id}/config_autofill"
GRANTS = BUILDS + "/grants"
TOKENS = BUILDS + "/tokens"
TRIGGERS = BUILDS + "/triggers"
TRIGGER = TRIGGERS + "/{trigger_uuid}"
WORKERS = BUILDS + "/workers"
WORKER = WORKERS + "/{external_script_id}"
WORKER_BUILD = WORKERS + "/{script_tag}"
HOOKS = WORKERS + "/{script_name}/deploy_hooks"  # the Worker's name, not its tag (D16)
HOOK = HOOKS + "/{deploy_hook_uuid}"
BUILD = BUILDS + "/builds/{build_uuid}"

# fmt: off
OPERATIONS: tuple[Operation, ...] = (
    # --- Workers Builds: repository connections (spec §3) -----------------------------------
    Operation("PUT", CONNECTIONS, "upsertRepoConnection", repo_connections.upsert,
              "builds:write", "Create or update a repository connection",
              body=UpsertRepoConnectionRequest, result=RepoConnection,
              audit=Audited("repo_connection", "repo_connection_uuid", "upsert")),
    Operation("DELETE", CONNECTIONS + "/{repo_connection_uuid}", "deleteRepoConnection",
              repo_connections.delete, "builds:write", "Delete a repository connection",
              result=None, audit=Audited("repo_connection", "repo_connection_uuid", "delete")),
    Operation("GET", CONNECTIONS, "listRepoConnections", repo_connections.list_,
              "builds:read", "List repository connections",
              query=repo_connections.ListConnectionsQuery, result=list[RepoConnection],
              paged=True, extension=True),
    Operation("GET", CONNECTIONS + "/{repo_connection_uuid}", "getRepoConnection",
              repo_connections.get, "builds:read", "Get a repository connection",
              result=RepoConnection, extension=True),
    Operation("GET", AUTOFILL, "getWorkerConfigAutofill", autofill.get, "builds:read",
              "Propose build settings from a branch of a connected repository",
              query=autofill.AutofillQuery, result=ConfigAutofill, tag="GitHub Integration"),
    # --- grants (D21): Cloudflare's Git app installations; the operator writes them (CLI) ------
    Operation("GET", GRANTS, "listGrants", grants.list_, "builds:read",
              "The provider accounts whose repositories this account may connect",
              query=PageQuery, result=list[Grant], paged=True, extension=True),
    Operation("GET", GRANTS + "/{grant_id}", "getGrant", grants.get, "builds:read",
              "Get a grant", result=Grant, extension=True),
    # --- build tokens (spec §4) ---------------------------------------------------------------
    Operation("GET", TOKENS, "listBuildTokens", build_tokens.list_, "builds:read",
              "List build tokens", query=PageQuery, result=list[BuildToken], paged=True),
    Operation("POST", TOKENS, "createBuildToken", build_tokens.create, "builds:write",
              "Register a build token", body=CreateBuildTokenRequest, result=BuildToken,
              audit=Audited("build_token", "build_token_uuid", "create")),
    Operation("DELETE", TOKENS + "/{build_token_uuid}", "deleteBuildToken", build_tokens.delete,
              "builds:write", "Delete a build token", result=None,
              audit=Audited("build_token", "build_token_uuid", "delete")),
    # --- triggers and variables (spec §5) -----------------------------------------------------
    Operation("POST", TRIGGERS, "createTrigger", triggers.create, "builds:write",
              "Create a trigger", body=CreateTriggerRequest, result=Trigger,
              audit=Audited("trigger", "trigger_uuid", "create")),
    Operation("GET", TRIGGERS, "listTriggers", triggers.list_, "builds:read",
              "List the account's triggers", query=PageQuery, result=list[Trigger], paged=True,
              extension=True),
    Operation("PATCH", TRIGGER, "updateTrigger", triggers.update, "builds:write",
              "Update a trigger", body=UpdateTriggerRequest, result=Trigger,
              audit=Audited("trigger", "trigger_uuid", "update")),
    Operation("DELETE", TRIGGER, "deleteTrigger", triggers.delete, "builds:write",
              "Delete a trigger (cancels its unfinished builds)", result=None,
              audit=Audited("trigger", "trigger_uuid", "delete")),
    Operation("GET", TRIGGER, "getTrigger", triggers.get, "builds:read", "Get a trigger",
              result=Trigger, extension=True),
    Operation("POST", TRIGGER + "/builds", "createManualBuild", builds.create_manual,
              "builds:write", "Start a build", body=CreateBuildRequest, result=Build,
              audit=Audited("build", "build_uuid", "create")),
    Operation("POST", TRIGGER + "/purge_build_cache", "purgeBuildCache",
              triggers.purge_build_cache, "builds:write", "Purge the build cache", result=None,
              audit=Audited("build_cache", "trigger_uuid", "purge")),
    Operation("GET", TRIGGER + "/environment_variables", "listEnvironmentVariables",
              triggers.list_variables, "builds:read", "List build variables",
              result=dict[str, Variable]),
    Operation("PATCH", TRIGGER + "/environment_variables", "upsertEnvironmentVariables",
              triggers.set_variables, "builds:write", "Set build variables",
              body=VariablesMap, body_decoder=triggers.decode_variables,
              result=dict[str, Variable],
              audit=Audited("environment_variables", "trigger_uuid", "update", variable_keys)),
    Operation("DELETE", TRIGGER + "/environment_variables/{environment_variable_key}",
              "deleteEnvironmentVariable", triggers.delete_variable, "builds:write",
              "Delete a build variable", result=None,
              audit=Audited("environment_variables", "trigger_uuid", "delete")),
    Operation("GET", WORKER + "/triggers", "listTriggersByScript", triggers.list_by_worker,
              "builds:read", "List a Worker's triggers", result=list[Trigger]),
    # --- builds (spec §6, §7) -------------------------------------------------------------------
    Operation("GET", WORKER + "/builds", "listBuildsByScript", builds.list_by_worker,
              "builds:read", "List a Worker's builds, newest first", query=PageQuery,
              result=list[Build], paged=True),
    Operation("GET", BUILDS + "/builds", "getBuildsByVersionIds", builds.by_versions,
              "builds:read", "Builds by Worker version ids", query=builds.VersionsQuery,
              result=BuildsMap),
    # Before {build_uuid}: "latest" is not a uuid.
    Operation("GET", BUILDS + "/builds/latest", "getLatestBuildsByScripts", builds.latest,
              "builds:read", "Latest build of each Worker", query=builds.LatestQuery,
              result=BuildsMap),
    Operation("GET", BUILD, "getBuildByUuid", builds.get, "builds:read", "Get a build",
              result=Build),
    Operation("PUT", BUILD + "/cancel", "cancelBuildByUuid", builds.cancel, "builds:write",
              "Cancel a build", result=CanceledBuild,
              audit=Audited("build", "build_uuid", "cancel")),
    Operation("GET", BUILD + "/logs", "getBuildLogs", builds.logs, "builds:read",
              "A page of a build's log lines", query=builds.LogsQuery, result=BuildLogs),
    Operation("GET", BUILD + "/logs/stream", "streamBuildLogs", builds.stream_logs,
              "builds:read", "A build's log lines as Server-Sent Events",
              query=builds.LogsQuery, result=None, extension=True, media_type="text/event-stream"),
    Operation("GET", BUILDS + "/account/limits", "getAccountLimits", builds.account_limits,
              "builds:read", "Build-minute limits", result=AccountLimits),
    # --- deploy hooks (spec §8) ------------------------------------------------------------------
    Operation("GET", HOOKS, "listDeployHooks", deploy_hooks.list_, "builds:read",
              "List a Worker's deploy hooks", result=list[DetailedDeployHook]),
    Operation("POST", HOOKS, "createDeployHook", deploy_hooks.create, "builds:write",
              "Create a deploy hook", body=DeployHookRequest, result=DeployHook, errors=(409,),
              audit=Audited("deploy_hook", "deploy_hook_uuid", "create")),
    Operation("GET", HOOK, "getDeployHook", deploy_hooks.get, "builds:read",
              "Get a deploy hook", result=DeployHook),
    Operation("PUT", HOOK, "updateDeployHook", deploy_hooks.update, "builds:write",
              "Replace a deploy hook's name and branch", body=DeployHookRequest, errors=(409,),
              result=DeployHook, audit=Audited("deploy_hook", "deploy_hook_uuid", "update")),
    Operation("DELETE", HOOK, "deleteDeployHook", deploy_hooks.delete, "builds:write",
              "Delete a deploy hook (returns it)", result=DeployHook,
              audit=Audited("deploy_hook", "deploy_hook_uuid", "delete")),
    # Outside /accounts and unauthenticated: the hook's uuid is the secret.
    Operation("POST", V4 + "/workers/builds/deploy_hooks/{deploy_hook_uuid}",
              "triggerDeployHook", deploy_hooks.trigger, "none",
              "Start a build with a deploy hook", result=TriggeredDeployHook,
              audit=Audited("build", "build_uuid", "create")),  # recorded in the hook's account
    # --- Worker build configuration (spec §1b, §9) ----------------------------------------------
    Operation("POST", WORKERS, "createWorkerBuild", worker_builds.create, "builds:write",
              "Set up builds for a Worker (connection and triggers)",
              body=CreateWorkerBuildRequest, result=WorkerBuild, status=201, errors=(409,),
              audit=Audited("worker_build", "script_tag", "create")),
    Operation("GET", WORKER_BUILD, "getWorkerBuild", worker_builds.get, "builds:read",
              "A Worker's build configuration", result=WorkerBuild),
    Operation("PATCH", WORKER_BUILD, "updateWorkerBuild", worker_builds.update,
              "builds:write", "Update a Worker's build configuration",
              body=UpdateWorkerBuildRequest, query=worker_builds.UpdateQuery,
              result=WorkerBuild, audit=Audited("worker_build", "script_tag", "update")),
    Operation("DELETE", WORKER_BUILD, "deleteWorkerBuild", worker_builds.delete,
              "builds:write", "Remove a Worker's build configuration (its triggers)",
              result=str, audit=Audited("worker_build", "script_tag", "delete")),
    # --- push webhooks (docs/webhooks.md); the intake itself is /webhooks/{provider} ---------
    Operation("GET", BUILDS + "/webhook_deliveries", "listWebhookDeliveries", webhooks.list_,
              "builds:read", "Webhook deliveries for the account's repositories, newest first",
              query=PageQuery, result=list[WebhookDelivery], paged=True, extension=True),
    Operation("POST", BUILDS + "/webhook_deliveries/{delivery_uuid}/replay",
              "replayWebhookDelivery", webhooks.replay, "builds:write",
              "Match a stored delivery again, as if new (starts its builds again)",
              result=WebhookDelivery, extension=True, errors=(409,),
              audit=Audited("webhook_delivery", "delivery_uuid", "replay")),
    Operation("POST", TRIGGER + "/explain", "explainTrigger", webhooks.explain, "builds:read",
              "Would a push build with this trigger, and which rule decides",
              body=ExplainRequest, result=Explanation, extension=True),
    # --- audit log (docs/compatibility.md): any credential that may read the account's Builds
    Operation("GET", ACCOUNT + "/audit_logs", "getAccountAuditLogs", audit_logs.list_,
              "builds:read", "The account's writes, newest first", query=audit_logs.AuditLogsQuery,
              result=list[AuditLog], paged=True, tag="Audit Logs"),
    # --- identity (conventions §4) ------------------------------------------------------------
    Operation("GET", V4 + "/user/tokens/verify", "verifyUserToken", identity.verify_token,
              "user-token", "Verify a user API token", result=TokenVerification, tag="Tokens"),
    Operation("GET", ACCOUNT + "/tokens/verify", "verifyAccountToken", identity.verify_token,
              "account-token", "Verify an account API token", result=TokenVerification,
              tag="Tokens"),
    Operation("GET", V4 + "/accounts", "listAccounts", identity.list_accounts, "account",
              "List accounts", query=identity.PageQuery, result=list[Account], paged=True,
              tag="Accounts"),
    Operation("GET", ACCOUNT, "getAccount", identity.get_account, "account",
              "Account details", result=Account, tag="Accounts"),
    # --- operations (outside /client/v4) ------------------------------------------------------
    Operation("GET", "/healthz", "healthz", health.healthz, "none", "The process is up",
              result=dict[str, str], tag="Health"),
    Operation("GET", "/metrics", "metrics", metrics.render, "none",
              "Prometheus metrics of this process", result=None, tag="Health",
              media_type="text/plain"),
    Operation("GET", "/readyz", "readyz", health.readyz, "none",
              "The database is reachable and its schema current", result=dict[str, str],
              tag="Health", errors=(503,)),
)
# fmt: on


def served(strict: bool) -> tuple[Operation, ...]:
    """The operations this server answers; strict mode (D7) drops every extension."""
    return tuple(op for op in OPERATIONS if not (strict and op.extension))


def withheld(strict: bool) -> tuple[Operation, ...]:
    """The extensions strict mode removes: they answer 404 12000, as Cloudflare does."""
    return tuple(op for op in OPERATIONS if strict and op.extension)
