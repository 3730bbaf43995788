"""The inputs of routing: the `route` object's validation, canonical model keys, and the failover policy.

Method: table-driven cases, each naming the wire value and the outcome (parsed value or error text).
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.catalog import load_catalog
from proxy.routing.candidates import (
    canonical_model_key,
    canonical_model_name,
    resolve_model_names,
    resolve_requested_model,
)
from proxy.routing.errors import InvalidRoute
from proxy.routing.failover import should_fail_over
from proxy.routing.requirements import PriceCeiling, RequestNeeds, RouteRequest, parse_route


def test_absent_route_means_defaults() -> None:
    assert parse_route(None) == RouteRequest()
    assert parse_route({}).strategy == "balanced"


@pytest.mark.parametrize(
    ("raw", "ceiling"),
    [
        (12_345, PriceCeiling(request_nano_usd=12_345)),
        (
            {"prompt": "0.15", "completion": 0.6},
            PriceCeiling(input_nano_usd_per_mtok=150_000_000, output_nano_usd_per_mtok=600_000_000),
        ),
        ({"request": "0.000000001"}, PriceCeiling(request_nano_usd=1)),
        ({"input_nano_usd_per_mtok": 7}, PriceCeiling(input_nano_usd_per_mtok=7)),
    ],
)
def test_max_price_forms(raw: object, ceiling: PriceCeiling) -> None:
    assert parse_route({"max_price": raw}).max_price == ceiling


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "route must be an object"),
        (
            {"strategy": "fastest"},
            "route.strategy: Input should be 'balanced', 'cost', 'latency' or 'availability'",
        ),
        ({"max_price": {"prompt": "0.0000000001"}}, "finer than 1 nano-USD"),
        ({"max_price": {"prompt": "-1"}}, "not a plain decimal amount"),
        ({"max_price": {"prompt": "abc"}}, "not a plain decimal amount"),
        # Decimal("1e999999") * 10**9 raised decimal.Overflow: a 500 before the fix.
        ({"max_price": {"prompt": "1e999999"}}, "not a plain decimal amount"),
        ({"max_price": {"completion": "1_000"}}, "not a plain decimal amount"),
        ({"max_price": {"request": "NaN"}}, "not a plain decimal amount"),
        ({"max_price": {"request": "2000000"}}, "at most 1000000 USD"),
        ({"max_price": {"prompt": 1e300}}, "not a plain decimal amount"),
        ({"max_price": {"prompt": "1", "request_nano_usd": 5}}, "mixes USD keys"),
        ({"max_price": {}}, "at least one of"),
        ({"max_price": True}, "integer (nano-USD per request) or an object"),
        ({"max_price": -5}, "greater than or equal to 0"),
        ({"require": ["telepathy"]}, "route.require.0"),
        ({"models": [" "]}, "must not be blank"),
        ({"providers": ["x"] * 65}, "route.providers"),
        ({"stratgy": "cost"}, "route.stratgy: Extra inputs are not permitted"),
    ],
)
def test_invalid_routes_are_refused_with_the_field_named(raw: Any, message: str) -> None:
    with pytest.raises(InvalidRoute) as caught:
        parse_route(raw)
    assert message in str(caught.value)
    assert caught.value.code == "invalid_route"


def test_request_needs_bound_must_be_a_bound() -> None:
    with pytest.raises(ValueError, match="prompt_tokens_max"):
        RequestNeeds(prompt_tokens=10, prompt_tokens_max=5)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("llama-3.3-70b-versatile", "llama-3.3-70b"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b"),
        ("meta-llama/Meta-Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b"),
        ("meta-llama/Llama-3-70b-chat-hf", "llama-3-70b"),  # "3-70b" is a version and a size, not 3.70
        ("glm-5p3", "glm-5.3"),
        ("zai-glm-5-3", "glm-5.3"),
        ("claude-opus-4-5", "claude-opus-4.5"),
        ("gpt-3.5-turbo", "gpt-3.5-turbo"),  # "-turbo" alone is part of the name
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("gemma-3-27b-it", "gemma-3-27b"),
    ],
)
def test_canonical_model_name(name: str, key: str) -> None:
    assert canonical_model_name(name) == key


def test_canonical_keys_group_providers_of_one_model_in_the_catalog() -> None:
    catalog = load_catalog()
    groups: dict[str, set[str]] = {}
    for model in catalog:
        groups.setdefault(canonical_model_key(model), set()).add(model.provider)
    assert groups["llama-3.3-70b"] == {"groq", "together"}
    assert groups["gpt-oss-120b"] == {"cerebras", "fireworks", "groq", "openai", "together"}
    assert groups["gpt-4o"] == {"openai"}
    assert groups["gpt-4o-mini"] == {"openai"}


@pytest.mark.parametrize(
    ("kind", "bytes_sent", "attempt", "deadline_left_s", "expected"),
    [
        ("rate_limited", False, 1, 10.0, True),
        ("server_error", False, 1, 10.0, True),
        ("timeout", False, 2, 10.0, True),
        ("connection", False, 1, 10.0, True),
        ("overloaded", False, 1, 10.0, True),
        ("stream_interrupted", False, 1, 10.0, True),
        ("auth", False, 1, 10.0, True),  # our credentials at that provider, not the caller's fault
        ("stream_interrupted", True, 1, 10.0, False),  # a byte already reached the client
        ("server_error", True, 1, 10.0, False),
        ("bad_request", False, 1, 10.0, False),  # caller errors: never
        ("context_length", False, 1, 10.0, False),
        ("payload_too_large", False, 1, 10.0, False),
        ("something_new", False, 1, 10.0, False),
        ("server_error", False, 3, 10.0, False),  # attempts exhausted
        ("server_error", False, 1, 0.1, False),  # deadline too close
    ],
)
def test_should_fail_over(
    kind: str, bytes_sent: bool, attempt: int, deadline_left_s: float, expected: bool
) -> None:
    decided = should_fail_over(
        kind,
        bytes_sent_to_client=bytes_sent,
        attempt=attempt,
        attempts_max=3,
        deadline_left_s=deadline_left_s,
    )
    assert decided is expected


@pytest.mark.parametrize("name", ["", "  ", "openai/", "/"])
def test_a_name_with_no_model_in_it_is_a_callers_error(name: str) -> None:
    # Found by fuzzing: an empty canonical key was an assertion (a 500), not an unknown model.
    index = load_catalog()
    with pytest.raises(InvalidRoute):
        resolve_requested_model(index, name)
    with pytest.raises(InvalidRoute):
        resolve_model_names(index, [name])
