"""Push webhooks: POST /webhooks/github and /webhooks/gitlab, and the delivery extensions (D7).

The two intake endpoints live outside the route table: they need the raw body and the headers
(the signature covers the exact bytes), and no Cloudflare credential applies to them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from buildsd.api import envelope
from buildsd.api.endpoint import Call, PageQuery, Reply, read_body
from buildsd.errors import BuildsError, InvalidWebhookSignature, WebhooksNotConfigured
from buildsd.services import Services
from buildsd.services.webhook_events import Provider
from buildsd.wire import Explanation, Page, WebhookDelivery, result_info

log = logging.getLogger("buildsd.webhooks")


def _intake(provider: Provider, services: Services) -> Callable[[Request], Awaitable[Response]]:
    limit = services.settings.max_body_bytes

    async def receive(request: Request) -> Response:
        try:
            raw = await read_body(request, limit)
            headers = {name.lower(): value for name, value in request.headers.items()}
            ack = await services.webhooks.receive(provider, headers, raw)
        except BuildsError as exc:
            if isinstance(exc, InvalidWebhookSignature | WebhooksNotConfigured):
                # Refused deliveries are not stored (their body is unverified): this line is
                # where an operator finds them. GitHub's delivery log shows our answer too.
                client = request.client.host if request.client else "?"
                cause = exc.chain[0].message if exc.chain else exc.message
                log.warning("webhook from %s refused (%s): %s", client, provider, cause)
            return envelope.error(exc)
        except Exception:
            log.exception("unexpected error receiving a %s webhook", provider)
            return envelope.error(BuildsError())
        return envelope.ok(ack)

    receive.__name__ = f"receive_{provider}_webhook"
    return receive


def routes(services: Services) -> list[Route]:
    """The intake endpoints; kept in strict mode (they are how builds start, not API surface)."""
    return [
        Route(f"/webhooks/{provider}", _intake(provider, services), methods=["POST"])
        for provider in ("github", "gitlab")
    ]


async def list_(call: Call) -> Reply:
    query: PageQuery = call.query
    page = Page(query.page, query.per_page)
    items, total = await call.services.webhooks.page(call.account_id, page)
    return Reply(items, result_info(page, len(items), total))


async def replay(call: Call) -> WebhookDelivery:
    return await call.services.webhooks.replay(call.account_id, call.params["delivery_uuid"])


async def explain(call: Call) -> Explanation:
    return await call.services.webhooks.explain(
        call.account_id, call.params["trigger_uuid"], call.body
    )
