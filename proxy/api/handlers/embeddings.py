"""POST /v1/embeddings: quote (input only) → pay (key or x402) → hold → upstream → capture → respond."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from aiohttp import web

from proxy.api.app_keys import BILLING, CATALOG, HEALTH_TRACKER, PAYMENT_GATE, UPSTREAMS
from proxy.api.auth import authenticate_bearer
from proxy.api.middlewares import request_id_of
from proxy.api.request_parsing import read_json_model
from proxy.catalog import CatalogModel, UnknownModel
from proxy.catalog.pricing import embeddings_input_tokens_upper_bound, quote_request
from proxy.errors import ContextLengthExceeded, InvalidRequest, NotFound
from proxy.openai_types import EmbeddingsRequest
from proxy.providers.base import ProviderAdapter
from proxy.providers.errors import UpstreamError
from proxy.providers.tokens import estimate_text_tokens
from proxy.serving.dispatch import attempts_header
from proxy.serving.payer import open_paid_session, with_payment_outcome
from proxy.serving.upstream_errors import api_error_for_upstream
from proxy.serving.usage_log import Attempt

__all__ = ["routes"]

routes = web.RouteTableDef()
log = structlog.get_logger("megarouter.embeddings")
# A free model still takes one atomic unit through x402 (zero is not a payable amount); it stays as credit.
QUOTE_NANO_USD_MIN = 1


def _embeddings_model(app: web.Application, model_id: str) -> CatalogModel:
    try:
        model = app[CATALOG].get(model_id)
    except UnknownModel as error:
        raise NotFound(
            f"The model '{model_id}' does not exist", code="model_not_found", param="model"
        ) from error
    if not model.capabilities.embeddings:
        raise InvalidRequest(
            f"'{model_id}' is not an embeddings model", code="model_not_supported", param="model"
        )
    if model.provider not in app[UPSTREAMS].providers:
        raise InvalidRequest(
            f"provider '{model.provider}' is not configured", code="provider_not_configured", param="model"
        )
    if not _serves_embeddings(app[UPSTREAMS].adapter_for(model)):
        # Refused before anything is held: the adapter would raise, and the caller would see a 500.
        raise InvalidRequest(
            f"embeddings through the {model.api_kind} API are not supported yet ('{model_id}')",
            code="model_not_supported",
            param="model",
        )
    return model


def _serves_embeddings(adapter: ProviderAdapter) -> bool:
    """Whether this adapter kind translates embeddings (the base class only refuses them)."""
    return type(adapter).embeddings is not ProviderAdapter.embeddings


def _check_input_fits(body: EmbeddingsRequest, model: CatalogModel) -> None:
    """Each input must fit the model's window; refused before anything is held or sent."""
    items: Sequence[str | int | Sequence[int]] = [body.input] if isinstance(body.input, str) else body.input
    for index, item in enumerate(items):
        if isinstance(item, str):
            tokens = estimate_text_tokens(item)
        else:
            tokens = 1 if isinstance(item, int) else len(item)
        if tokens > model.context_window_tokens:
            raise ContextLengthExceeded(
                f"input {index} (about {tokens} tokens) exceeds the "
                f"{model.context_window_tokens}-token window of '{model.id}'",
                param="input",
            )


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json_model(request, EmbeddingsRequest)
    model = _embeddings_model(app, body.model)
    _check_input_fits(body, model)
    input_tokens_max = embeddings_input_tokens_upper_bound(body.input)
    quote = quote_request(model.id, model, prompt_tokens_max=input_tokens_max, output_tokens_max=0)
    hold_nano_usd = max(quote.cost_nano_usd_max, QUOTE_NANO_USD_MIN)
    request_id = request_id_of(request)
    billing, payment_headers = await open_paid_session(
        request,
        gate=app[PAYMENT_GATE],
        billing=app[BILLING],
        principal=await authenticate_bearer(request),
        hold_nano_usd=hold_nano_usd,
        first_provider=model.provider,
        strategy=None,
        streamed=False,
        request_id=request_id,
    )
    tracker = app[HEALTH_TRACKER]
    started_s = time.monotonic()
    try:
        result = await app[UPSTREAMS].adapter_for(model).embeddings(body)
    except UpstreamError as error:
        attempt = Attempt(
            model_id=model.id,
            provider=model.provider,
            outcome=error.kind,
            status=error.status,
            latency_ms=int((time.monotonic() - started_s) * 1000),
        )
        await tracker.record_failure(model.id, kind=error.kind, retry_after_s=error.retry_after_s)
        await billing.release(attempts=[attempt], outcome="upstream_failed")
        raise with_payment_outcome(api_error_for_upstream(error), payment_headers) from error
    except BaseException:
        await billing.release(attempts=[], outcome="aborted")
        raise
    latency_s = time.monotonic() - started_s
    await tracker.record_success(model.id, latency_s=latency_s)
    attempts = [
        Attempt(model_id=model.id, provider=model.provider, outcome="ok", latency_ms=int(latency_s * 1000))
    ]
    cost_nano_usd = await billing.charge(model, result.usage, attempts=attempts, outcome="completed")
    headers = {
        **payment_headers,
        "X-MegaRouter-Model": model.id,
        "X-MegaRouter-Provider": model.provider,
        "X-MegaRouter-Attempts": attempts_header(attempts),
        "X-MegaRouter-Quote-Nano-USD": str(hold_nano_usd),
        "X-MegaRouter-Cost-Nano-USD": str(cost_nano_usd),
    }
    return web.json_response(result.response.model_dump(mode="json", exclude_none=True), headers=headers)
