"""GET /v1/credits (the key's wallet credit) and POST /v1/credits/withdraw (a signed withdrawal)."""

from __future__ import annotations

from aiohttp import web

from proxy.accounts.credits import credit_view
from proxy.accounts.withdrawals import WithdrawalRecord, WithdrawalRequest, WithdrawalStatus
from proxy.api.app_keys import LEDGER, SETTINGS, WITHDRAWALS
from proxy.api.auth import require_bearer
from proxy.api.request_parsing import read_json_model

__all__ = ["routes"]

routes = web.RouteTableDef()


def _withdrawal_json(record: WithdrawalRecord) -> dict[str, object]:
    return {"object": "withdrawal", **record.model_dump(mode="json")}


@routes.get("/v1/credits")
async def get_credits(request: web.Request) -> web.Response:
    principal = await require_bearer(request)
    view = await credit_view(
        request.app[LEDGER],
        wallet=principal.wallet,
        credit_account=principal.credit_account,
        movements_max=request.app[SETTINGS].accounts.statement_lines_max,
    )
    return web.json_response({"object": "credit", **view.model_dump(mode="json")})


@routes.post("/v1/credits/withdraw")
async def withdraw(request: web.Request) -> web.Response:
    """Needs no key: the wallet's signature over the request is the authority (a lost key cannot drain it)."""
    body = await read_json_model(request, WithdrawalRequest)
    record = await request.app[WITHDRAWALS].withdraw(body)
    status = 200 if record.status == WithdrawalStatus.COMPLETED else 202
    return web.json_response(_withdrawal_json(record), status=status)
