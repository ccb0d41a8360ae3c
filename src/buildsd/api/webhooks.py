"""Push webhooks: POST /webhooks/{github,gitlab}[/{account_id}], and the delivery extensions (D7).

The intake endpoints live outside the route table: they need the raw body and the headers (the
signature covers the exact bytes), and no Cloudflare credential applies to them. With an account
id the account's own secret verifies the delivery (D22); without, the global one.
"""

from __future__ import annotations

import logging
from typing import get_args

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from buildsd.api import envelope
from buildsd.api.endpoint import Call, PageQuery, Reply, receive_body, send_json
from buildsd.errors import BuildsError, InvalidWebhookSignature, WebhooksNotConfigured
from buildsd.services import Services
from buildsd.services.webhook_events import Provider
from buildsd.wire import Explanation, Page, WebhookDelivery, result_info

log = logging.getLogger("buildsd.webhooks")
PROVIDERS: tuple[Provider, ...] = get_args(Provider)


class Intake:
    """POST /webhooks/{provider}[/{account_id}] as a plain ASGI app (no Request or Response
    objects): under a burst of deliveries every microsecond here delays the answer GitHub is
    timing."""

    def __init__(self, provider: Provider, services: Services, *, per_account: bool) -> None:
        self.provider = provider
        self.services = services
        self.per_account = per_account
        self.limit = services.settings.max_body_bytes
        # What the metrics count requests by.
        self.__name__ = f"receive_{provider}_{'account_' if per_account else ''}webhook"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        account_id = scope["path_params"]["account_id"] if self.per_account else None
        try:
            raw = await receive_body(receive, headers, self.limit)
            ack = await self.services.webhooks.receive(self.provider, headers, raw, account_id)
        except BuildsError as exc:
            if isinstance(exc, InvalidWebhookSignature | WebhooksNotConfigured):
                # Refused deliveries are not stored (their body is unverified): this line is
                # where an operator finds them. GitHub's delivery log shows our answer too.
                client = scope["client"][0] if scope.get("client") else "?"
                cause = exc.chain[0].message if exc.chain else exc.message
                log.warning("webhook from %s refused (%s): %s", client, self.provider, cause)
            await send_json(send, exc.status, envelope.error_body(exc), exc.headers)
            return
        except Exception:
            log.exception("unexpected error receiving a %s webhook", self.provider)
            await send_json(send, 500, envelope.error_body(BuildsError()), {})
            return
        await send_json(send, 200, envelope.ok_body(ack), {})


def routes(services: Services) -> list[Route]:
    """The intake endpoints; kept in strict mode (they are how builds start, not API surface)."""
    return [
        Route(path, Intake(provider, services, per_account=per_account), methods=["POST"])
        for provider in PROVIDERS
        for path, per_account in (
            (f"/webhooks/{provider}", False),
            (f"/webhooks/{provider}/{{account_id}}", True),
        )
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
