"""POST /v1/chat/completions: quote → pay (x402) → hold → upstream → capture → respond.

Every path that took money ends with the hold resolved: captured at the real cost, or voided when the
upstream failed, so a failed inference costs nothing and leaves the payment as the payer's credit.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from ledger import chart
from proxy.app_keys import CATALOG, CHART_ACCOUNTS, LEDGER, PAYMENT_GATE, SETTINGS, UPSTREAMS
from proxy.catalog import CatalogModel, UnknownModel
from proxy.errors import InvalidRequest, NotFound
from proxy.openai_types import ChatCompletionRequest
from proxy.payments.gate import AcceptedPayment
from proxy.pricing import Quote, charge_for_usage, prompt_tokens_upper_bound, quote_request
from proxy.providers.base import ChatResult
from proxy.providers.errors import UpstreamError
from proxy.request_parsing import read_json_model
from proxy.settings import Settings
from proxy.upstream_errors import api_error_for_upstream

__all__ = ["routes"]

routes = web.RouteTableDef()
log = structlog.get_logger("megarouter.chat")

HOLD_CODE = "inference_hold"


def _resolve_model(request: ChatCompletionRequest, request_app: web.Application) -> CatalogModel:
    settings = request_app[SETTINGS]
    model_id = settings.default_model if request.model == "auto" else request.model
    try:
        return request_app[CATALOG].get(model_id)
    except UnknownModel as error:
        raise NotFound(
            f"The model '{request.model}' does not exist", code="model_not_found", param="model"
        ) from error


def _validate_supported(request: ChatCompletionRequest, model: CatalogModel) -> None:
    if request.n not in (None, 1):
        raise InvalidRequest("only n=1 is supported", code="unsupported_value", param="n")
    if request.stream:
        raise InvalidRequest("streaming is not supported yet", code="unsupported_value", param="stream")
    if model.capabilities.embeddings:
        raise InvalidRequest(f"'{model.id}' is an embeddings model", code="model_not_supported", param="model")


def _output_tokens_max(request: ChatCompletionRequest, model: CatalogModel, settings: Settings) -> int:
    asked = request.max_completion_tokens or request.max_tokens or settings.default_max_output_tokens
    return min(asked, model.max_output_tokens)


def _quote(request: ChatCompletionRequest, model: CatalogModel, settings: Settings) -> Quote:
    messages = [message.model_dump(mode="json", exclude_none=True) for message in request.messages]
    tools = [tool.model_dump(mode="json", exclude_none=True) for tool in request.tools or []]
    return quote_request(
        model.id,
        model,
        prompt_tokens_max=prompt_tokens_upper_bound(messages, tools=tools),
        output_tokens_max=_output_tokens_max(request, model, settings),
    )


async def _serve_held(
    app: web.Application,
    *,
    body: ChatCompletionRequest,
    model: CatalogModel,
    quote: Quote,
    payment: AcceptedPayment,
    request_id: str,
) -> tuple[ChatResult, int]:
    """Holds the quote on the payer's credit, calls upstream, and captures or voids. Returns the result and cost."""
    ledger = app[LEDGER]
    payable_account = chart.provider_payable(model.provider)
    await app[CHART_ACCOUNTS].ensure([payable_account])
    hold = await ledger.hold(
        idempotency_key=f"{request_id}:hold",
        code=HOLD_CODE,
        debit_account=payment.credit_account,
        credit_account=payable_account,
        amount=quote.cost_nano_usd_max,
        timeout_s=app[SETTINGS].hold_timeout_s,
        metadata={"request_id": request_id, "model": model.id},
    )
    # The upstream may never produce more than was quoted for.
    upstream_body = body.model_copy(update={"max_tokens": quote.output_tokens_max, "max_completion_tokens": None})
    try:
        result = await app[UPSTREAMS].adapter_for(model).chat(upstream_body)
    except UpstreamError as error:
        await ledger.void(hold.id, idempotency_key=f"{request_id}:void")
        log.warning("upstream_failed", kind=error.kind, status=error.status, model=model.id)
        raise api_error_for_upstream(error, headers=payment.response_headers) from error
    except BaseException:
        # Cancelled or a bug: release the money before the error travels on.
        await ledger.void(hold.id, idempotency_key=f"{request_id}:void")
        raise
    charge = charge_for_usage(model.id, model, result.usage)
    cost_nano_usd = charge.cost_nano_usd
    if cost_nano_usd > quote.cost_nano_usd_max:
        # The quote is an upper bound by construction; if a provider over-reports, the payer is not billed more.
        log.error("charge_exceeds_quote", charge_nano_usd=cost_nano_usd, quote_nano_usd=quote.cost_nano_usd_max)
        cost_nano_usd = quote.cost_nano_usd_max
    await ledger.capture(hold.id, cost_nano_usd, idempotency_key=f"{request_id}:capture")
    log.info("inference_charged", model=model.id, provider=model.provider, cost_nano_usd=cost_nano_usd,
             quote_nano_usd=quote.cost_nano_usd_max, input_tokens=result.usage.input_tokens,
             output_tokens=result.usage.output_tokens)
    return result, cost_nano_usd


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json_model(request, ChatCompletionRequest)
    model = _resolve_model(body, app)
    _validate_supported(body, model)
    quote = _quote(body, model, app[SETTINGS])
    request_id = str(structlog.contextvars.get_contextvars().get("request_id", ""))
    structlog.contextvars.bind_contextvars(model=model.id)
    payment = await app[PAYMENT_GATE].accept(request, quote_nano_usd=quote.cost_nano_usd_max, request_id=request_id)
    result, cost_nano_usd = await _serve_held(
        app, body=body, model=model, quote=quote, payment=payment, request_id=request_id
    )
    headers = {
        **payment.response_headers,
        "X-MegaRouter-Model": model.id,
        "X-MegaRouter-Provider": model.provider,
        "X-MegaRouter-Quote-Nano-USD": str(quote.cost_nano_usd_max),
        "X-MegaRouter-Cost-Nano-USD": str(cost_nano_usd),
    }
    return web.json_response(result.response.model_dump(mode="json", exclude_none=True), headers=headers)
