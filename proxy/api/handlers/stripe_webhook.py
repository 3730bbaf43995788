"""POST /v1/stripe/webhook: Stripe's signed events that top up (or reverse) an organization's credit.

Stripe retries any answer other than 2xx, so: a verified event that concerns no booking, or was booked
before, is a 200; a bad signature a 400 (nothing booked). Without a webhook secret configured the endpoint
does not exist (404 `stripe_not_configured`).
"""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import BILLING, ORGANIZATIONS, SETTINGS
from proxy.api.request_parsing import read_body
from proxy.errors import NotFound
from proxy.governance.stripe_topups import StripeTopups

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/stripe/webhook")
async def stripe_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].orgs
    if settings.stripe_webhook_secret is None:
        raise NotFound(
            "Stripe top-ups are not configured (MEGAROUTER_STRIPE_WEBHOOK_SECRET)",
            code="stripe_not_configured",
        )
    topups = StripeTopups(
        request.app[BILLING].ledger,
        request.app[ORGANIZATIONS],
        webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
        tolerance_s=settings.stripe_webhook_tolerance_s,
    )
    event = topups.verified_event(await read_body(request), request.headers.get("Stripe-Signature"))
    booking = await topups.book(event)
    return web.json_response({"received": True, **booking.model_dump(mode="json")})
