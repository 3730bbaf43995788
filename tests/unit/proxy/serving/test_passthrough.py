"""A Messages request passes through only to Anthropic deployments, under a quote that bounds its raw body.

Method: plans over packaged catalog models, quoted as the planner quotes the translated request; the
pass-through plan is compared with them.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.catalog import CatalogModel
from proxy.catalog.catalog import load_catalog
from proxy.catalog.pricing import quote_request, raw_messages_prompt_tokens_upper_bound
from proxy.serving.passthrough import output_tokens_asked, passthrough_plan
from proxy.serving.planning import ServePlan

HAIKU = "anthropic/claude-haiku-4-5"
SONNET = "anthropic/claude-3-5-sonnet"
MINI = "openai/gpt-4o-mini"
TRANSLATED_PROMPT_TOKENS_MAX = 50


def models(*ids: str) -> tuple[CatalogModel, ...]:
    catalog = load_catalog()
    return tuple(catalog.get(model_id) for model_id in ids)


def translated_plan(candidates: tuple[CatalogModel, ...], *, max_tokens: int) -> ServePlan:
    quotes = {
        model.id: quote_request(
            model.id,
            model,
            prompt_tokens_max=TRANSLATED_PROMPT_TOKENS_MAX,
            output_tokens_max=min(max_tokens, model.max_output_tokens),
        )
        for model in candidates
    }
    return ServePlan(candidates=candidates, quotes=quotes, strategy="balanced", task_kind="", reasons=())


def messages_body(**fields: Any) -> dict[str, Any]:
    return {
        "model": HAIKU,
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief. " * 40, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hello"}],
        **fields,
    }


def test_a_plan_led_by_another_provider_is_translated() -> None:
    plan = translated_plan(models(MINI, HAIKU), max_tokens=4096)
    assert passthrough_plan(plan, messages_body()) is None


def test_only_anthropic_candidates_remain_in_their_order() -> None:
    plan = translated_plan(models(HAIKU, MINI, SONNET), max_tokens=4096)
    passed = passthrough_plan(plan, messages_body())
    assert passed is not None
    assert [model.id for model in passed.candidates] == [HAIKU, SONNET]
    assert set(passed.quotes) == {HAIKU, SONNET}
    assert passed.strategy == plan.strategy


def test_the_quote_bounds_the_raw_body_and_never_shrinks_the_translated_one() -> None:
    body = messages_body(thinking={"type": "enabled", "budget_tokens": 2048}, top_k=5)
    plan = translated_plan(models(HAIKU), max_tokens=4096)
    passed = passthrough_plan(plan, body)
    assert passed is not None
    quote = passed.quotes[HAIKU]
    assert quote.prompt_tokens_max == raw_messages_prompt_tokens_upper_bound(body)
    assert quote.prompt_tokens_max > TRANSLATED_PROMPT_TOKENS_MAX
    assert quote.output_tokens_max == 4096
    assert passed.hold_nano_usd > plan.hold_nano_usd


def test_a_translated_bound_larger_than_the_raw_one_is_kept() -> None:
    body = messages_body()
    raw_tokens = raw_messages_prompt_tokens_upper_bound(body)
    (haiku,) = models(HAIKU)
    quote = quote_request(HAIKU, haiku, prompt_tokens_max=raw_tokens * 2, output_tokens_max=4096)
    plan = ServePlan(
        candidates=(haiku,), quotes={HAIKU: quote}, strategy="balanced", task_kind="", reasons=()
    )
    passed = passthrough_plan(plan, body)
    assert passed is not None
    assert passed.quotes[HAIKU] == quote


@pytest.mark.parametrize(
    ("fields", "asked"),
    [
        ({}, 4096),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, 4096),
        ({"thinking": {"type": "enabled", "budget_tokens": 10_000}}, 10_000),  # Interleaved thinking's.
        ({"thinking": {"type": "disabled"}}, 4096),
    ],
)
def test_output_counts_max_tokens_or_a_larger_thinking_budget(fields: dict[str, Any], asked: int) -> None:
    assert output_tokens_asked(messages_body(**fields)) == asked


def test_output_is_capped_by_each_model() -> None:
    (haiku,) = models(HAIKU)
    body = messages_body(max_tokens=haiku.max_output_tokens * 2)
    passed = passthrough_plan(translated_plan((haiku,), max_tokens=body["max_tokens"]), body)
    assert passed is not None
    assert passed.quotes[HAIKU].output_tokens_max == haiku.max_output_tokens
