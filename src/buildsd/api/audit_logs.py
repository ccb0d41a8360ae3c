"""GET /accounts/{account_id}/audit_logs: the account's writes in Cloudflare's audit-log shape."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from buildsd import clock
from buildsd.api.endpoint import Call, Reply
from buildsd.errors import InvalidQueryParameter
from buildsd.services.audit import Filters
from buildsd.wire import SINGLE_LINE, Page, PageNumber, result_info

# One line: no control character (PostgreSQL text cannot even hold NUL; found by fuzzing).
Text = Annotated[str, msgspec.Meta(max_length=320, pattern=SINGLE_LINE)]


class AuditLogsQuery(msgspec.Struct):
    """Cloudflare's query parameters; the SDKs send nested ones with dots (`action.type`).

    `export` and `zone.name` are accepted and ignored: there is no CSV export and no zone.
    """

    id: Text | None = None
    action_type: Text | None = msgspec.field(default=None, name="action.type")
    actor_email: Text | None = msgspec.field(default=None, name="actor.email")
    actor_ip: Text | None = msgspec.field(default=None, name="actor.ip")
    since: Text | None = None
    before: Text | None = None
    direction: Literal["desc", "asc"] = "desc"
    hide_user_logs: bool = False
    export: bool = False
    zone_name: Text | None = msgspec.field(default=None, name="zone.name")
    page: PageNumber = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


def _time(name: str, value: str | None) -> str | None:
    """An RFC 3339 time or a date (`2019-04-30`, midnight UTC) → the stored form."""
    if value is None:
        return None
    try:
        return clock.to_wire(clock.parse(value))
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidQueryParameter(
            f"{name}: expected an RFC 3339 date-time or a date (2019-04-30)", pointer=f"/{name}"
        ) from exc


def _ip(value: str | None) -> str | None:
    # Cloudflare also takes a CIDR range; buildsd matches one address exactly (documented).
    if value is not None and "/" in value:
        raise InvalidQueryParameter(
            "actor.ip: CIDR ranges are not supported; give one address", pointer="/actor.ip"
        )
    return value


async def list_(call: Call) -> Reply:
    query: AuditLogsQuery = call.query
    filters = Filters(
        id=query.id,
        action_type=query.action_type,
        actor_email=query.actor_email.lower() if query.actor_email else None,
        actor_ip=_ip(query.actor_ip),
        since=_time("since", query.since),
        before=_time("before", query.before),
        hide_user_logs=query.hide_user_logs,
    )
    page = Page(query.page, query.per_page)
    items, total = await call.services.audit.page(
        call.account_id, filters, page, newest_first=query.direction == "desc"
    )
    return Reply(items, result_info(page, len(items), total))
