"""What every paid endpoint's handler hands the serving pipeline: the pipeline over the app's services, and
the request-scoped inputs (the caller's key if any, the server-minted request id, CORS headers for streams).
"""

from __future__ import annotations

from aiohttp import web

from proxy.api.app_keys import (
    BILLING,
    CATALOG,
    CLASSIFIER,
    DISPATCHER,
    HEALTH_TRACKER,
    MODEL_INDEX,
    PAYMENT_GATE,
    SETTINGS,
    SIGN_IN_RATE_LIMITER,
    TRACER,
    UPSTREAMS,
    WALLET_SIGN_INS,
)
from proxy.api.auth import authenticate_bearer, authenticate_key
from proxy.api.middlewares import cors_headers, request_id_of
from proxy.errors import RateLimited
from proxy.openai_types import ChatCompletionRequest
from proxy.serving.pipeline import PaidCall, Pipeline
from proxy.serving.planning import ServePlan, plan_chat_request
from x402.siwx import SIGN_IN_WITH_X

__all__ = ["limit_sign_ins", "paid_call", "pipeline_of", "plan_chat"]


def pipeline_of(app: web.Application) -> Pipeline:
    return Pipeline(
        gate=app[PAYMENT_GATE],
        billing=app[BILLING],
        dispatcher=app[DISPATCHER],
        settings=app[SETTINGS],
        tracer=app[TRACER],
        sign_ins=app.get(WALLET_SIGN_INS),
    )


async def paid_call(request: web.Request, *, x_api_key: bool = False) -> PaidCall:
    """The request-scoped inputs of the pipeline: the caller's key (if any), a keyless caller's
    `SIGN-IN-WITH-X` proof, and the request's id. With `x_api_key`, the key may come in that header too
    (Anthropic's door). A key decides who pays: a proof beside it is ignored."""
    principal = await (authenticate_key(request) if x_api_key else authenticate_bearer(request))
    sign_in_header = request.headers.get(SIGN_IN_WITH_X) if principal is None else None
    if sign_in_header is not None and WALLET_SIGN_INS in request.app:
        limit_sign_ins(request)
    return PaidCall(
        request=request,
        principal=principal,
        request_id=request_id_of(request),
        stream_headers=cors_headers(),
        sign_in_header=sign_in_header if WALLET_SIGN_INS in request.app else None,
    )


def limit_sign_ins(request: web.Request) -> None:
    # Each proof costs a signature recovery and a database write: bounded per peer address, like
    # sign-in challenges (never by X-Forwarded-For, which the caller chooses).
    retry_after_s = request.app[SIGN_IN_RATE_LIMITER].take(request.remote or "unknown")
    if retry_after_s is not None:
        raise RateLimited(
            f"too many sign-in-with-x proofs from this client; retry in {retry_after_s} s",
            code="too_many_sign_ins",
            headers={"Retry-After": str(retry_after_s)},
        )


async def plan_chat(request: web.Request, body: ChatCompletionRequest, call: PaidCall) -> ServePlan:
    """The plan of a chat request, whichever door it came in by (the key may carry its own strategy)."""
    app = request.app
    return await plan_chat_request(
        body,
        key_strategy=call.principal.route_strategy if call.principal else None,
        headers=request.headers,
        catalog=app[CATALOG],
        model_index=app[MODEL_INDEX],
        settings=app[SETTINGS],
        tracker=app[HEALTH_TRACKER],
        classifier=app[CLASSIFIER],
        providers_available=app[UPSTREAMS].providers,
    )
