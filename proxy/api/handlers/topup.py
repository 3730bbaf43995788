"""POST /v1/credits/topup?amount=<USD>: an x402 payment of any amount the caller chooses, booked as the paying
wallet's credit (usable by that wallet's API keys, and withdrawable)."""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import BILLING, PAYMENT_GATE
from proxy.api.middlewares import request_id_of
from proxy.errors import InvalidRequest
from proxy.money import NANO_USD_PER_USD, usd_text_to_nano_usd

__all__ = ["TOPUP_NANO_USD_MAX", "TOPUP_USD_MAX", "routes", "topup_amount_nano_usd"]

routes = web.RouteTableDef()
# A bound on one payment; larger deposits can be made as plain token transfers (the chain watcher books them).
TOPUP_USD_MAX = 1_000_000
TOPUP_NANO_USD_MAX = TOPUP_USD_MAX * NANO_USD_PER_USD


def topup_amount_nano_usd(raw: str | None) -> int:
    if raw is None:
        raise InvalidRequest(
            "amount is required, in USD, e.g. ?amount=5.00", code="missing_amount", param="amount"
        )
    try:
        amount_nano_usd = usd_text_to_nano_usd(raw)
    except ValueError as error:
        raise InvalidRequest(f"amount: {error}", code="invalid_amount", param="amount") from error
    if not 0 < amount_nano_usd <= TOPUP_NANO_USD_MAX:
        raise InvalidRequest(
            f"amount must be above 0 and at most {TOPUP_USD_MAX} USD", code="invalid_amount", param="amount"
        )
    return amount_nano_usd


@routes.post("/v1/credits/topup")
async def topup(request: web.Request) -> web.Response:
    app = request.app
    amount_nano_usd = topup_amount_nano_usd(request.query.get("amount"))
    request_id = request_id_of(request)
    payment = await app[PAYMENT_GATE].accept(request, quote_nano_usd=amount_nano_usd, request_id=request_id)
    balance = await app[BILLING].ledger.balance(payment.credit_account)
    body = {
        "object": "credit.topup",
        "wallet": payment.payer,
        "credited_nano_usd": payment.amount_nano_usd,
        "balance": {"posted_nano_usd": balance.posted, "available_nano_usd": balance.available},
    }
    return web.json_response(body, headers=payment.response_headers)
