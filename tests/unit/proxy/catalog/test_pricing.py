"""Quotes bound every possible charge, and charges are the exact rational cost rounded up by < 1 nano-USD.

Method: Hypothesis over random prices and token counts, compared with Fraction arithmetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from proxy.catalog.pricing import (
    IMAGE_TOKENS_MAX,
    STRUCTURED_OUTPUT_OVERHEAD_TOKENS,
    charge_for_usage,
    prompt_tokens_upper_bound,
    quote_request,
)
from proxy.money import atomic_to_nano_usd, div_ceil
from x402.requirements import atomic_from_nano_usd

PRICE = st.integers(min_value=0, max_value=200_000_000_000)  # Up to $200 per token-million, in nano-USD.
TOKENS = st.integers(min_value=0, max_value=2_000_000)


@dataclass(frozen=True)
class Prices:
    input_price_nano_usd_per_mtok: int
    output_price_nano_usd_per_mtok: int
    cached_input_price_nano_usd_per_mtok: int
    cache_write_input_price_nano_usd_per_mtok: int


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int


prices_strategy = st.builds(Prices, PRICE, PRICE, PRICE, PRICE)


@st.composite
def usage_strategy(draw: st.DrawFn) -> Usage:
    cached = draw(TOKENS)
    written = draw(TOKENS)
    uncached = draw(TOKENS)
    return Usage(uncached + cached + written, draw(TOKENS), cached, written)


@given(prices_strategy, usage_strategy())
def test_charge_is_exact_cost_rounded_up_by_less_than_one_unit(prices: Prices, usage: Usage) -> None:
    charge = charge_for_usage("m", prices, usage)
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_input_tokens
    exact = Fraction(
        uncached * prices.input_price_nano_usd_per_mtok
        + usage.cached_input_tokens * prices.cached_input_price_nano_usd_per_mtok
        + usage.cache_write_input_tokens * prices.cache_write_input_price_nano_usd_per_mtok
        + usage.output_tokens * prices.output_price_nano_usd_per_mtok,
        1_000_000,
    )
    assert isinstance(charge.cost_nano_usd, int)
    assert exact <= charge.cost_nano_usd < exact + 1


@given(prices_strategy, usage_strategy())
def test_quote_covers_every_charge_within_its_bounds(prices: Prices, usage: Usage) -> None:
    quote = quote_request(
        "m",
        prices,
        prompt_tokens_max=max(usage.input_tokens, 1),
        output_tokens_max=max(usage.output_tokens, 1),
    )
    assert charge_for_usage("m", prices, usage).cost_nano_usd <= quote.cost_nano_usd_max


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=9))
def test_atomic_rounding_covers_the_amount_and_wastes_less_than_one_atomic_unit(
    nano: int, decimals: int
) -> None:
    atomic = atomic_from_nano_usd(nano, decimals=decimals)
    assert (
        nano
        <= atomic_to_nano_usd(atomic, decimals=decimals)
        < nano + atomic_to_nano_usd(1, decimals=decimals)
    )


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=1, max_value=10**12))
def test_div_ceil_matches_fraction_ceiling(numerator: int, denominator: int) -> None:
    result = div_ceil(numerator, denominator)
    assert result - 1 < Fraction(numerator, denominator) <= result


@given(st.text(max_size=400))
def test_prompt_bound_is_at_least_the_utf8_size(text: str) -> None:
    bound = prompt_tokens_upper_bound([{"role": "user", "content": text}])
    assert bound >= len(text.encode("utf-8"))


def test_image_parts_are_bounded_by_the_largest_tile_budget() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
    with_image = prompt_tokens_upper_bound(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    )
    text_only = prompt_tokens_upper_bound([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert with_image - text_only == IMAGE_TOKENS_MAX


def test_tools_count_towards_the_prompt() -> None:
    messages = [{"role": "user", "content": "weather?"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    assert prompt_tokens_upper_bound(messages, tools=tools) > prompt_tokens_upper_bound(messages)


def _schema(properties: int) -> dict[str, object]:
    return {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(properties)}}


def test_the_prompt_bound_grows_with_the_tool_schema() -> None:
    messages = [{"role": "user", "content": "file it"}]
    small = [{"type": "function", "function": {"name": "file", "parameters": _schema(1)}}]
    large = [{"type": "function", "function": {"name": "file", "parameters": _schema(500)}}]
    large_bytes = len(json.dumps(large, separators=(",", ":")).encode("utf-8"))
    assert prompt_tokens_upper_bound(messages, tools=large) >= (
        prompt_tokens_upper_bound(messages) + large_bytes + STRUCTURED_OUTPUT_OVERHEAD_TOKENS
    )
    assert prompt_tokens_upper_bound(messages, tools=large) > prompt_tokens_upper_bound(messages, tools=small)


def test_the_response_schema_and_passed_through_fields_count_towards_the_prompt() -> None:
    messages = [{"role": "user", "content": "answer in JSON"}]
    response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": _schema(300)}}
    schema_bytes = len(json.dumps(response_format["json_schema"], separators=(",", ":")).encode("utf-8"))
    without = prompt_tokens_upper_bound(messages, response_format={"type": "json_object"})
    with_schema = prompt_tokens_upper_bound(messages, response_format=response_format)
    assert with_schema - without == schema_bytes + STRUCTURED_OUTPUT_OVERHEAD_TOKENS
    functions = {"functions": [{"name": "legacy", "parameters": _schema(100)}]}
    assert prompt_tokens_upper_bound(messages, other_fields=functions) > prompt_tokens_upper_bound(messages)
