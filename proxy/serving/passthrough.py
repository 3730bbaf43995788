"""Plans a Messages request that passes through to Anthropic untranslated, so that what only Anthropic's
format can say (thinking and its blocks, `cache_control`, `top_k`, a `stop_sequence` stop, fields newer
than this router) survives both ways.

A request passes through when the plan's first candidate is an Anthropic deployment. Its candidates are
then the plan's Anthropic deployments only: a failover to another provider would translate, silently
dropping thinking or cache breakpoints half-way through a request that asked for them, so such candidates
are left out (the plan's strategy chose the order; only its non-Anthropic entries go). When the first
candidate is another provider, the request is translated for every attempt, as before.

Money is as for a translated request: each candidate's quote bounds its prompt by the larger of the
translated request's bound and the raw body's (proxy/catalog/pricing.py), and its output by `max_tokens`
or the thinking budget, whichever is larger (thinking tokens are output tokens), capped by the model;
the `max_tokens` sent never exceeds what the quote paid for (proxy/serving/dispatch.py). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.catalog.pricing import quote_request, raw_messages_prompt_tokens_upper_bound
from proxy.serving.planning import ServePlan

__all__ = ["output_tokens_asked", "passthrough_plan"]


def output_tokens_asked(body: Mapping[str, Any]) -> int:
    """The output a Messages body may ask for: `max_tokens`, or a larger thinking budget."""
    max_tokens = body["max_tokens"]
    assert isinstance(max_tokens, int)
    assert max_tokens >= 1
    thinking = body.get("thinking")
    budget_tokens = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    return max(max_tokens, budget_tokens) if isinstance(budget_tokens, int) else max_tokens


def passthrough_plan(plan: ServePlan, body: Mapping[str, Any]) -> ServePlan | None:
    """The plan for sending `body` (a validated Messages request) untranslated, or None when the first
    candidate does not speak Anthropic's format."""
    if plan.candidates[0].api_kind != "anthropic":
        return None
    candidates = tuple(model for model in plan.candidates if model.api_kind == "anthropic")
    raw_prompt_tokens_max = raw_messages_prompt_tokens_upper_bound(body)
    output_asked = output_tokens_asked(body)
    quotes = {
        model.id: quote_request(
            model.id,
            model,
            prompt_tokens_max=max(raw_prompt_tokens_max, plan.quotes[model.id].prompt_tokens_max),
            output_tokens_max=min(output_asked, model.max_output_tokens),
        )
        for model in candidates
    }
    passed = plan.model_copy(update={"candidates": candidates, "quotes": quotes})
    assert passed.hold_nano_usd >= max(plan.quotes[model.id].cost_nano_usd_max for model in candidates)
    return passed
