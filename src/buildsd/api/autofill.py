"""Handler for config autofill (spec §3.3): what a branch of a connected repository proposes."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from buildsd.api.endpoint import Call
from buildsd.wire import Branch, ConfigAutofill


class AutofillQuery(Struct):
    branch: Branch  # required: without it the query decoder answers 400 12013
    # Relative to the repository's top; "" and "/" both mean the top.
    root_directory: Annotated[str, Meta(max_length=1024)] = "/"


async def get(call: Call) -> ConfigAutofill:
    query: AutofillQuery = call.query
    return await call.services.config_autofill.get(
        call.account_id,
        call.params["provider_type"],
        call.params["provider_account_id"],
        call.params["repo_id"],
        query.branch,
        query.root_directory,
    )
