"""GET /v1/credits (the wallet credit of the key, or of a wallet signed in with x402's sign-in-with-x) and
POST /v1/credits/withdraw (a signed withdrawal)."""

from __future__ import annotations

from aiohttp import web

from ledger import chart
from proxy.accounts.credits import credit_view
from proxy.accounts.withdrawals import WithdrawalRecord, WithdrawalRequest, WithdrawalStatus
from proxy.api.app_keys import LEDGER, SETTINGS, WALLET_SIGN_INS, WITHDRAWALS
from proxy.api.auth import require_bearer
from proxy.api.paid import limit_sign_ins
from proxy.api.request_parsing import read_json_model
from proxy.errors import AuthenticationFailed
from x402.errors import InvalidPayload
from x402.siwx import SIGN_IN_WITH_X, SiwxInvalid

__all__ = ["routes"]

routes = web.RouteTableDef()


def _withdrawal_json(record: WithdrawalRecord) -> dict[str, object]:
    return {"object": "withdrawal", **record.model_dump(mode="json")}


async def _credit_owner(request: web.Request) -> tuple[str, str]:
    """(wallet, credit account) of the key, or of a keyless wallet proving itself with `SIGN-IN-WITH-X`
    (a proof is accepted once, exactly as on paid requests); a 401 otherwise."""
    sign_ins = request.app.get(WALLET_SIGN_INS)
    header = request.headers.get(SIGN_IN_WITH_X)
    if "Authorization" in request.headers or header is None or sign_ins is None:
        principal = await require_bearer(request)
        return principal.wallet, principal.credit_account
    limit_sign_ins(request)
    try:
        wallet = await sign_ins.sign_in(header)
    except (InvalidPayload, SiwxInvalid) as error:
        raise AuthenticationFailed(f"sign-in-with-x refused: {error}", code=error.reason) from error
    return wallet, chart.credit_wallet(wallet)


@routes.get("/v1/credits")
async def get_credits(request: web.Request) -> web.Response:
    wallet, credit_account = await _credit_owner(request)
    view = await credit_view(
        request.app[LEDGER],
        wallet=wallet,
        credit_account=credit_account,
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
