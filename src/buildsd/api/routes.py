"""The route table: every operation buildsd serves, with its access and its body and query types."""

from __future__ import annotations

from buildsd.api import health, identity, repo_connections
from buildsd.api.endpoint import Operation
from buildsd.wire import (
    Account,
    RepoConnection,
    TokenVerification,
    UpsertRepoConnectionRequest,
)

V4 = "/client/v4"
ACCOUNT = V4 + "/accounts/{account_id}"
BUILDS = ACCOUNT + "/builds"
CONNECTIONS = BUILDS + "/repos/connections"

# fmt: off
OPERATIONS: tuple[Operation, ...] = (
    # --- Workers Builds: repository connections (spec §3) -----------------------------------
    Operation("PUT", CONNECTIONS, "upsertRepoConnection", repo_connections.upsert,
              "builds:write", "Create or update a repository connection",
              body=UpsertRepoConnectionRequest, result=RepoConnection),
    Operation("DELETE", CONNECTIONS + "/{repo_connection_uuid}", "deleteRepoConnection",
              repo_connections.delete, "builds:write", "Delete a repository connection",
              result=None),
    Operation("GET", CONNECTIONS, "listRepoConnections", repo_connections.list_,
              "builds:read", "List repository connections",
              query=repo_connections.ListConnectionsQuery, result=list[RepoConnection],
              paged=True, extension=True),
    Operation("GET", CONNECTIONS + "/{repo_connection_uuid}", "getRepoConnection",
              repo_connections.get, "builds:read", "Get a repository connection",
              result=RepoConnection, extension=True),
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
    Operation("GET", "/readyz", "readyz", health.readyz, "none",
              "The database is reachable and its schema current", result=dict[str, str],
              tag="Health"),
)
# fmt: on


def served(strict: bool) -> tuple[Operation, ...]:
    """The operations this server answers; strict mode (D7) drops every extension."""
    return tuple(op for op in OPERATIONS if not (strict and op.extension))


def withheld(strict: bool) -> tuple[Operation, ...]:
    """The extensions strict mode removes: they answer 404 12000, as Cloudflare does."""
    return tuple(op for op in OPERATIONS if strict and op.extension)
