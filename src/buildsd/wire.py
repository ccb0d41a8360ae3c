"""The wire: msgspec Structs with Cloudflare's exact field names, for bodies and results alike.

A Struct attribute, its JSON field and its database column share one name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

ProviderType = Literal["github", "gitlab", "gitlab_internal", "origin"]
PROVIDER_TYPES: tuple[str, ...] = ("github", "gitlab", "gitlab_internal", "origin")

# A name or id sent by a client: never empty, never unbounded.
Name = Annotated[str, Meta(min_length=1, max_length=256)]


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
