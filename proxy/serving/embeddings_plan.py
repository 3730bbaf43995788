"""Plans an embeddings request: the requested deployment, then every other deployment of the same model that
can serve it (for failover), and the hold that covers the most expensive of them.

Everything a caller got wrong (unknown model, not an embeddings model, an input beyond the window) is
refused here, before anything is held or sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from proxy.catalog import Catalog, CatalogModel, UnknownModel
from proxy.catalog.pricing import embeddings_input_tokens_upper_bound, quote_request
from proxy.errors import ContextLengthExceeded, InvalidRequest, NotFound
from proxy.openai_types import EmbeddingsRequest
from proxy.providers.base import ProviderAdapter
from proxy.providers.tokens import estimate_text_tokens
from proxy.routing.candidates import ModelIndex
from proxy.serving.upstreams import Upstreams

__all__ = ["QUOTE_NANO_USD_MIN", "EmbeddingsPlan", "plan_embeddings_request"]

# A free model still takes one atomic unit through x402 (zero is not a payable amount); it stays as credit.
QUOTE_NANO_USD_MIN = 1


class EmbeddingsPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    candidates: tuple[CatalogModel, ...]
    hold_nano_usd: int


def _serves_embeddings(adapter: ProviderAdapter) -> bool:
    """Whether this adapter kind translates embeddings (the base class only refuses them)."""
    return type(adapter).embeddings is not ProviderAdapter.embeddings


def _input_tokens(body: EmbeddingsRequest) -> list[int]:
    """The estimated tokens of each input: each must fit the window on its own."""
    items: Sequence[str | int | Sequence[int]] = [body.input] if isinstance(body.input, str) else body.input
    return [
        estimate_text_tokens(item) if isinstance(item, str) else 1 if isinstance(item, int) else len(item)
        for item in items
    ]


def _requested_model(catalog: Catalog, upstreams: Upstreams, model_id: str) -> CatalogModel:
    try:
        model = catalog.get(model_id)
    except UnknownModel as error:
        raise NotFound(
            f"The model '{model_id}' does not exist", code="model_not_found", param="model"
        ) from error
    if not model.capabilities.embeddings:
        raise InvalidRequest(
            f"'{model_id}' is not an embeddings model", code="model_not_supported", param="model"
        )
    if model.provider not in upstreams.providers:
        raise InvalidRequest(
            f"provider '{model.provider}' is not configured", code="provider_not_configured", param="model"
        )
    if not _serves_embeddings(upstreams.adapter_for(model)):
        # Refused before anything is held: the adapter would raise, and the caller would see a 500.
        raise InvalidRequest(
            f"embeddings through the {model.api_kind} API are not supported yet ('{model_id}')",
            code="model_not_supported",
            param="model",
        )
    return model


def _can_serve(model: CatalogModel, upstreams: Upstreams, input_tokens_max: int) -> bool:
    return (
        model.capabilities.embeddings
        and model.provider in upstreams.providers
        and _serves_embeddings(upstreams.adapter_for(model))
        and input_tokens_max <= model.context_window_tokens
    )


def plan_embeddings_request(
    body: EmbeddingsRequest, *, catalog: Catalog, model_index: ModelIndex, upstreams: Upstreams
) -> EmbeddingsPlan:
    model = _requested_model(catalog, upstreams, body.model)
    input_tokens = _input_tokens(body)
    for index, tokens in enumerate(input_tokens):
        if tokens > model.context_window_tokens:
            raise ContextLengthExceeded(
                f"input {index} (about {tokens} tokens) exceeds the "
                f"{model.context_window_tokens}-token window of '{model.id}'",
                param="input",
            )
    tokens = max(input_tokens, default=0)
    others = tuple(
        other
        for other in model_index.same_model(model_index.key(model))
        if other.id != model.id and _can_serve(other, upstreams, tokens)
    )
    candidates = (model, *others)
    input_tokens_max = embeddings_input_tokens_upper_bound(body.input)
    quote_nano_usd = max(
        quote_request(
            candidate.id, candidate, prompt_tokens_max=input_tokens_max, output_tokens_max=0
        ).cost_nano_usd_max
        for candidate in candidates
    )
    plan = EmbeddingsPlan(candidates=candidates, hold_nano_usd=max(quote_nano_usd, QUOTE_NANO_USD_MIN))
    assert plan.candidates[0] is model, "the requested deployment is tried first"
    return plan
