"""POST /v1/chat/completions: plan → pay (key or x402) → hold → upstream with failover → capture → respond.

Every path that took money ends with the hold resolved: captured at the real cost, or voided when no
candidate served, so a failed inference costs nothing and leaves an x402 payment as the payer's credit.
"""

from __future__ import annotations

import structlog
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
    UPSTREAMS,
)
from proxy.api.auth import authenticate_bearer
from proxy.api.middlewares import cors_headers, request_id_of
from proxy.api.request_parsing import read_json_model
from proxy.errors import InvalidRequest
from proxy.faults import crash_if_enabled
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.base import openai_usage
from proxy.providers.errors import UnsupportedRequest
from proxy.serving.billing import BillingSession
from proxy.serving.dispatch import NoCandidateServed, attempts_header
from proxy.serving.payer import open_paid_session, with_payment_outcome
from proxy.serving.planning import ServePlan, plan_chat_request
from proxy.serving.stream_relay import relay_stream
from proxy.serving.usage_log import Attempt

__all__ = ["routes"]

routes = web.RouteTableDef()
log = structlog.get_logger("megarouter.chat")


def _routing_headers(
    plan: ServePlan, served_model_id: str, served_provider: str, attempts: list[Attempt]
) -> dict[str, str]:
    return {
        "X-MegaRouter-Model": served_model_id,
        "X-MegaRouter-Provider": served_provider,
        "X-MegaRouter-Strategy": plan.strategy,
        "X-MegaRouter-Attempts": attempts_header(attempts),
        "X-MegaRouter-Quote-Nano-USD": str(plan.hold_nano_usd),
    }


async def _release_on_failure(
    billing: BillingSession, failure: NoCandidateServed, payment_headers: dict[str, str]
) -> None:
    await billing.release(attempts=failure.attempts, outcome="upstream_failed")
    with_payment_outcome(failure.error, payment_headers)
    log.warning("no_candidate_served", attempts=attempts_header(failure.attempts), code=failure.error.code)


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    app = request.app
    body = await read_json_model(request, ChatCompletionRequest)
    if body.n not in (None, 1):
        raise InvalidRequest("only n=1 is supported", code="unsupported_value", param="n")
    # The key (if any) is known before routing: it may carry its own default strategy.
    principal = await authenticate_bearer(request)
    plan = await plan_chat_request(
        body,
        key_strategy=principal.route_strategy if principal else None,
        headers=request.headers,
        catalog=app[CATALOG],
        model_index=app[MODEL_INDEX],
        settings=app[SETTINGS],
        tracker=app[HEALTH_TRACKER],
        classifier=app[CLASSIFIER],
        providers_available=app[UPSTREAMS].providers,
    )
    request_id = request_id_of(request)
    structlog.contextvars.bind_contextvars(strategy=plan.strategy, first_candidate=plan.candidates[0].id)
    billing, payment_headers = await open_paid_session(
        request,
        gate=app[PAYMENT_GATE],
        billing=app[BILLING],
        principal=principal,
        hold_nano_usd=plan.hold_nano_usd,
        first_provider=plan.candidates[0].provider,
        strategy=plan.strategy,
        streamed=bool(body.stream),
        request_id=request_id,
    )
    crash_if_enabled(app[SETTINGS].fault_injection, "after_inference_held")
    dispatcher = app[DISPATCHER]
    try:
        if body.stream:
            opened = await dispatcher.open_stream(body, plan)
        else:
            result, model, attempts = await dispatcher.complete(body, plan)
    except NoCandidateServed as failure:
        await _release_on_failure(billing, failure, payment_headers)
        raise failure.error from None
    except UnsupportedRequest as error:
        # A candidate's adapter cannot translate what routing let through (a tool call whose arguments are
        # not JSON, for one): the caller's error, so the hold is released and nothing charged.
        await billing.release(attempts=[], outcome="caller_error")
        refusal = InvalidRequest(str(error), code="unsupported_request", param="messages")
        raise with_payment_outcome(refusal, payment_headers) from error
    except BaseException:
        # Cancelled, or a bug: release the money before the error travels on.
        await billing.release(attempts=[], outcome="aborted")
        raise
    if body.stream:
        headers = {
            # Middlewares cannot add headers to a response that is already streaming: they are set here.
            "X-Request-Id": request_id,
            **cors_headers(),
            **payment_headers,
            **_routing_headers(plan, opened.model.id, opened.model.provider, opened.attempts),
        }
        return await relay_stream(
            request, body=body, opened=opened, billing=billing, dispatcher=dispatcher, headers=headers
        )
    cost_nano_usd = await billing.charge(model, result.usage, attempts=attempts, outcome="completed")
    headers = {
        **payment_headers,
        **_routing_headers(plan, model.id, model.provider, attempts),
        "X-MegaRouter-Cost-Nano-USD": str(cost_nano_usd),
    }
    # Callers (and SDKs) read token counts from the body for every provider kind: where the adapter's
    # translation (Anthropic, Gemini) left no usage, the body carries the usage we charged.
    response = result.response
    if response.usage is None:
        response = response.model_copy(update={"usage": openai_usage(result.usage)})
    return web.json_response(response.model_dump(mode="json", exclude_none=True), headers=headers)
