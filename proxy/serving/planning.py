"""Plans a chat request: which deployments to try in which order, and what each may cost at most.

The hold must cover the most expensive candidate that may be tried, so the request's quote is the largest
of the candidates' quotes; each candidate's own quote caps the `max_tokens` sent to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict

from proxy.catalog import Catalog, CatalogModel
from proxy.catalog.pricing import Quote, prompt_tokens_upper_bound, quote_request
from proxy.errors import ContextLengthExceeded, InvalidRequest, NotFound
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.tokens import estimate_prompt_tokens
from proxy.routing.candidates import ModelIndex
from proxy.routing.classifier import ClassifierModel, classify_request
from proxy.routing.errors import HealthStoreUnavailable, InvalidRoute, NoRouteCandidate
from proxy.routing.health import DeploymentHealth, HealthTracker
from proxy.routing.requirements import RequestNeeds, RouteRequest, parse_route
from proxy.routing.strategies import plan_route
from proxy.settings import Settings

__all__ = ["ALLOW_UNRATED_HEADER", "STRATEGY_HEADER", "ServePlan", "plan_chat_request"]

STRATEGY_HEADER = "X-MegaRouter-Strategy"
# "true" / "false": whether `auto` may pick models without a cited quality figure (see RouteRequest).
ALLOW_UNRATED_HEADER = "X-MegaRouter-Allow-Unrated"
_HEADER_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
log = structlog.get_logger("megarouter.planning")


class ServePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    candidates: tuple[CatalogModel, ...]
    quotes: dict[str, Quote]
    strategy: str
    task_kind: str
    reasons: tuple[str, ...]
    # Why these candidates (task, difficulty, quality needed, ranked candidates with prices and quotes):
    # what POST /v1/route/preview returns and what the request's usage event stores.
    explanation: dict[str, Any] | None = None

    @property
    def hold_nano_usd(self) -> int:
        return max(quote.cost_nano_usd_max for quote in self.quotes.values())


def _route_request(
    body: ChatCompletionRequest, headers: Mapping[str, str], settings: Settings, key_strategy: str | None
) -> RouteRequest:
    """The route object; its strategy from, in order: the object, the header, the API key, the server."""
    raw = (body.model_extra or {}).get("route")
    route = parse_route(raw)
    given = raw if isinstance(raw, Mapping) else {}
    header_unrated = headers.get(ALLOW_UNRATED_HEADER)
    if header_unrated is not None and "allow_unrated" not in given:
        allowed = _HEADER_BOOLEANS.get(header_unrated.strip().lower())
        if allowed is None:
            raise InvalidRoute(
                f"{ALLOW_UNRATED_HEADER} must be true or false, not {header_unrated[:20]!r}",
                param=ALLOW_UNRATED_HEADER,
            )
        route = route.model_copy(update={"allow_unrated": allowed})
    if "strategy" in given:
        return route
    header_strategy = headers.get(STRATEGY_HEADER)
    if header_strategy is not None:
        strategy = parse_route({**given, "strategy": header_strategy.strip()}).strategy
        return route.model_copy(update={"strategy": strategy})
    return route.model_copy(update={"strategy": key_strategy or settings.default_strategy})


def _has_images(body: ChatCompletionRequest) -> bool:
    return any(
        isinstance(message.content, list) and any(part.type == "image_url" for part in message.content)
        for message in body.messages
    )


def _content_part_types(body: ChatCompletionRequest) -> frozenset[str]:
    return frozenset(
        part.type
        for message in body.messages
        if isinstance(message.content, list)
        for part in message.content
    )


def _json_mode(body: ChatCompletionRequest) -> bool:
    return body.response_format is not None and body.response_format.type in ("json_object", "json_schema")


def _prompt_tokens_max(body: ChatCompletionRequest, messages: list[dict[str, Any]]) -> int:
    """The prompt bound over everything the upstream may render into the prompt: messages, tools, tool
    choice, response schema, and the unknown fields passed through to OpenAI-compatible upstreams as sent
    (legacy `functions`, for one). Only our own `route` object never leaves the router."""
    structured = body.model_dump(
        mode="json", exclude_none=True, include={"tools", "tool_choice", "response_format"}
    )
    passed_through = {key: value for key, value in (body.model_extra or {}).items() if key != "route"}
    return prompt_tokens_upper_bound(
        messages,
        tools=structured.get("tools"),
        tool_choice=structured.get("tool_choice"),
        response_format=structured.get("response_format"),
        other_fields=passed_through,
    )


async def _health(tracker: HealthTracker) -> dict[str, DeploymentHealth]:
    try:
        return await tracker.snapshots()
    except HealthStoreUnavailable:
        # Routing without shared health beats refusing traffic while Redis is away.
        log.warning("health_store_unavailable")
        return {}


async def plan_chat_request(
    body: ChatCompletionRequest,
    *,
    headers: Mapping[str, str],
    catalog: Catalog,
    settings: Settings,
    tracker: HealthTracker,
    classifier: ClassifierModel,
    providers_available: frozenset[str],
    key_strategy: str | None = None,
    model_index: ModelIndex | None = None,
) -> ServePlan:
    """The plan for one request. `model_index` is the catalog's, built once at start; without it, per call."""
    try:
        route = _route_request(body, headers, settings, key_strategy)
    except InvalidRoute as error:
        raise InvalidRequest(str(error), code="invalid_route", param=error.param) from error
    messages = [message.model_dump(mode="json", exclude_none=True) for message in body.messages]
    prompt_tokens_max = _prompt_tokens_max(body, messages)
    output_asked = body.max_completion_tokens or body.max_tokens or settings.default_max_output_tokens
    needs = RequestNeeds(
        prompt_tokens=min(estimate_prompt_tokens(body), prompt_tokens_max),
        prompt_tokens_max=prompt_tokens_max,
        output_tokens_max=output_asked,
        tools=bool(body.tools),
        vision=_has_images(body),
        content_part_types=_content_part_types(body),
        json_mode=_json_mode(body),
        streaming=bool(body.stream),
    )
    task = classify_request(messages, classifier) if body.model == "auto" else None
    try:
        plan = plan_route(
            ModelIndex.build(catalog) if model_index is None else model_index,
            route=route,
            needs=needs,
            health=await _health(tracker),
            providers_available=providers_available,
            task=task,
            requested_model=body.model,
            candidates_max=settings.route_candidates_max,
        )
    except InvalidRoute as error:
        raise NotFound(
            f"The model '{body.model}' does not exist", code="model_not_found", param="model"
        ) from error
    except NoRouteCandidate as error:
        detail = "; ".join(error.reasons[:5])
        if body.model != "auto" and "context window too small" in detail:
            raise ContextLengthExceeded(
                f"the prompt (about {needs.prompt_tokens} tokens) does not fit the context window of "
                f"'{body.model}'",
                param="messages",
            ) from error
        raise InvalidRequest(
            f"{error} ({detail})" if detail else str(error), code="no_route_candidate", param="model"
        ) from error
    quotes = {
        model.id: quote_request(
            model.id,
            model,
            prompt_tokens_max=prompt_tokens_max,
            output_tokens_max=min(output_asked, model.max_output_tokens),
        )
        for model in plan.candidates
    }
    explanation = {
        "model": body.model,
        "task_kind": plan.task_kind,
        # P(demanding) judged from the messages; null for an explicitly named model (not classified).
        "difficulty": None if task is None else round(task.difficulty, 4),
        "quality_needed": plan.needed_quality,
        "strategy": plan.strategy,
        "allow_unrated": route.allow_unrated,
        "candidates": [
            {
                "rank": rank,
                "model": model.id,
                "provider": model.provider,
                "rated": model.quality.rated,
                "quality": model.quality.for_task(plan.task_kind),
                "quality_basis": model.quality.basis,
                "input_price_nano_usd_per_mtok": model.input_price_nano_usd_per_mtok,
                "output_price_nano_usd_per_mtok": model.output_price_nano_usd_per_mtok,
                "quote_nano_usd": quotes[model.id].cost_nano_usd_max,
            }
            for rank, model in enumerate(plan.candidates, start=1)
        ],
        "hold_nano_usd": max(quote.cost_nano_usd_max for quote in quotes.values()),
        "reasons": list(plan.reasons),
    }
    return ServePlan(
        candidates=tuple(plan.candidates),
        quotes=quotes,
        strategy=plan.strategy,
        task_kind=plan.task_kind,
        reasons=tuple(plan.reasons),
        explanation=explanation,
    )
