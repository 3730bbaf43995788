"""Strategies on a fixed, hand-made catalog with fixed health: each picks what it should, and explains why.

Method: seven deployments whose prices, qualities and health are chosen so each strategy has one right
answer; every test names the expected order. The real catalog is used only for a smoke test.
"""

from __future__ import annotations

import pytest

from proxy.catalog import CatalogModel, ModelCapabilities, ModelQuality, load_catalog
from proxy.routing.classifier import classify_request
from proxy.routing.errors import InvalidRoute, NoRouteCandidate
from proxy.routing.health import DeploymentHealth
from proxy.routing.requirements import RequestNeeds, RouteRequest
from proxy.routing.strategies import RoutePlan, RouteTask, needed_quality, plan_route
from tests.fixtures.health_records import health_record

MTOK_USD = 1_000_000_000  # 1 USD per million tokens, in nano-USD per MTok


def model(
    model_id: str,
    *,
    quality: int,
    input_usd: float,
    output_usd: float,
    context: int = 128_000,
    tools: bool = True,
    vision: bool = False,
    json_mode: bool = True,
    embeddings: bool = False,
) -> CatalogModel:
    provider, upstream = model_id.split("/", 1)
    return CatalogModel(
        id=model_id,
        provider=provider,
        upstream_model=upstream,
        api_kind="openai",
        display_name=upstream,
        input_price_nano_usd_per_mtok=round(input_usd * MTOK_USD),
        output_price_nano_usd_per_mtok=round(output_usd * MTOK_USD),
        cached_input_price_nano_usd_per_mtok=0,
        cache_write_input_price_nano_usd_per_mtok=0,
        context_window_tokens=context,
        max_output_tokens=min(8_192, context),
        capabilities=ModelCapabilities(
            tools=tools, vision=vision, json_mode=json_mode, embeddings=embeddings
        ),
        quality=ModelQuality(
            overall=quality,
            chat=quality,
            summarization=quality,
            extraction=quality,
            code=quality,
            math=max(0, quality - 10),
            reasoning=quality,
            rated=True,
            basis="test",
            source="https://example.test/leaderboard",
            as_of="2026-01-01",
        ),
        source_ref="test",
    )


CATALOG = [
    model(
        "cheapco/tiny",
        quality=56,
        input_usd=0.05,
        output_usd=0.1,
        context=16_000,
        tools=False,
        json_mode=False,
    ),
    model("groq/llama-3.3-70b-versatile", quality=70, input_usd=0.59, output_usd=0.79),
    model("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", quality=70, input_usd=0.88, output_usd=0.88),
    model("openai/gpt-mid", quality=75, input_usd=0.4, output_usd=1.6, vision=True),
    model("openai/gpt-top", quality=92, input_usd=5.0, output_usd=20.0, vision=True, context=400_000),
    model("anthropic/claude-top", quality=90, input_usd=3.0, output_usd=15.0, vision=True, context=200_000),
    model("openai/text-embedding-3-small", quality=50, input_usd=0.02, output_usd=0.0, embeddings=True),
]
PROVIDERS = {"cheapco", "groq", "together", "openai", "anthropic"}
NEEDS = RequestNeeds(prompt_tokens=1_000, output_tokens_max=1_000)
# Difficulty is a percentile; 0.175 is half-way up to the strong tier's knee (0.35): needed quality 65.
MEDIUM_CHAT = RouteTask("chat", 0.23)  # needs quality 65


HEALTH = {
    "cheapco/tiny": health_record("cheapco/tiny", latency_s=0.2, requests=100, failures=1),
    "groq/llama-3.3-70b-versatile": health_record(
        "groq/llama-3.3-70b-versatile", latency_s=0.4, ttft_s=0.1, requests=100, failures=30
    ),
    "together/meta-llama/Llama-3.3-70B-Instruct-Turbo": health_record(
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo", latency_s=1.2, requests=100, failures=2
    ),
    "openai/gpt-mid": health_record("openai/gpt-mid", latency_s=0.9, ttft_s=0.5, requests=100, failures=0),
    "openai/gpt-top": health_record("openai/gpt-top", latency_s=3.0, requests=100, failures=1),
    "anthropic/claude-top": health_record("anthropic/claude-top", latency_s=2.5, requests=100, failures=5),
}


def plan(
    route: RouteRequest,
    *,
    task: RouteTask = MEDIUM_CHAT,
    needs: RequestNeeds = NEEDS,
    health_by_id: dict[str, DeploymentHealth] | None = None,
    requested_model: str | None = None,
    candidates_max: int = 10,
) -> RoutePlan:
    return plan_route(
        CATALOG,
        route=route,
        needs=needs,
        health=HEALTH if health_by_id is None else health_by_id,
        providers_available=PROVIDERS,
        task=task,
        requested_model=requested_model,
        candidates_max=candidates_max,
    )


def ids(route_plan: RoutePlan) -> list[str]:
    return [candidate.id for candidate in route_plan.candidates]


def test_needed_quality_maps_the_difficulty_piecewise_linearly_per_kind() -> None:
    assert needed_quality("chat", 0.0) == 55
    assert needed_quality("chat", 0.25) == 66  # half-way from the floor to the medium tier (65.5)
    assert needed_quality("chat", 0.5) == 76  # a prompt the classifier cannot call: the medium tier
    assert needed_quality("reasoning", 0.5) == 76
    assert needed_quality("chat", 1.0) == 89
    assert needed_quality("math", 1.0) == 90
    assert needed_quality("code", 7.0) == 90  # clamped
    shares = [step / 100 for step in range(101)]
    assert [needed_quality("code", p) for p in shares] == sorted(needed_quality("code", p) for p in shares)
    with pytest.raises(AssertionError):
        needed_quality("poetry", 0.5)


def test_cost_picks_the_cheapest_model_meeting_the_needed_quality() -> None:
    route_plan = plan(RouteRequest(strategy="cost"))
    assert route_plan.needed_quality == 65
    # Expected cost of 1,000 prompt + 400 reply tokens, in micro-USD: groq 590 + 316 = 906, gpt-mid
    # 400 + 640 = 1,040, together 880 + 352 = 1,232; tiny is below the needed quality, so it comes last.
    assert ids(route_plan) == [
        "groq/llama-3.3-70b-versatile",
        "openai/gpt-mid",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "anthropic/claude-top",
        "openai/gpt-top",
        "cheapco/tiny",
    ]
    assert "openai/text-embedding-3-small" not in ids(route_plan)


def test_cost_serves_an_easy_task_with_the_cheapest_model() -> None:
    route_plan = plan(RouteRequest(strategy="cost"), task=RouteTask("chat", 0.0))
    assert ids(route_plan)[0] == "cheapco/tiny"


def test_cost_for_a_hard_task_keeps_only_strong_models_in_front() -> None:
    route_plan = plan(RouteRequest(strategy="cost"), task=RouteTask("reasoning", 0.93))
    assert route_plan.needed_quality == 88
    assert ids(route_plan)[:2] == ["anthropic/claude-top", "openai/gpt-top"]


def test_latency_picks_the_fastest_healthy_and_puts_open_breakers_last() -> None:
    health_by_id = dict(HEALTH)
    health_by_id["openai/gpt-mid"] = health_record("openai/gpt-mid", breaker="open", latency_s=0.1)
    route_plan = plan(
        RouteRequest(strategy="latency"), task=RouteTask("chat", 0.0), health_by_id=health_by_id
    )
    assert ids(route_plan) == [
        "cheapco/tiny",
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "anthropic/claude-top",
        "openai/gpt-top",
        "openai/gpt-mid",
    ]
    assert any("breaker open" in reason for reason in route_plan.reasons)


def test_latency_uses_time_to_first_token_when_streaming() -> None:
    streaming = RequestNeeds(prompt_tokens=1_000, streaming=True)
    route_plan = plan(RouteRequest(strategy="latency"), needs=streaming)
    assert ids(route_plan)[:2] == ["groq/llama-3.3-70b-versatile", "openai/gpt-mid"]


def test_latency_ranks_half_open_after_closed() -> None:
    health_by_id = dict(HEALTH)
    health_by_id["groq/llama-3.3-70b-versatile"] = health_record(
        "groq/llama-3.3-70b-versatile", breaker="half_open", latency_s=0.1
    )
    route_plan = plan(RouteRequest(strategy="latency"), health_by_id=health_by_id)
    assert ids(route_plan)[:2] == ["openai/gpt-mid", "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"]


def test_availability_prefers_low_error_rates_then_redundancy() -> None:
    route_plan = plan(RouteRequest(strategy="availability"))
    assert ids(route_plan)[:4] == [
        "openai/gpt-mid",
        "openai/gpt-top",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "anthropic/claude-top",
    ]
    # With equal (unknown) health everywhere, the model served by two providers wins.
    fresh = plan(RouteRequest(strategy="availability"), health_by_id={})
    assert {candidate.id for candidate in fresh.candidates[:2]} == {
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    }


def test_balanced_trades_quality_against_cost_and_latency() -> None:
    route_plan = plan(RouteRequest(strategy="balanced"))
    # gpt-mid: good enough, cheap, fast, no errors; the top models pay for their price and latency.
    assert ids(route_plan)[0] == "openai/gpt-mid"
    hard = plan(RouteRequest(strategy="balanced"), task=RouteTask("chat", 1.0))
    assert ids(hard)[:2] == ["anthropic/claude-top", "openai/gpt-top"]


def test_requirements_used_by_the_request_filter_first() -> None:
    needs = RequestNeeds(prompt_tokens=20_000, tools=True, vision=True)
    route_plan = plan(RouteRequest(strategy="cost"), needs=needs, task=RouteTask("chat", 0.0))
    assert ids(route_plan) == ["openai/gpt-mid", "anthropic/claude-top", "openai/gpt-top"]
    assert "excluded 2: lacks vision" in route_plan.reasons
    long_prompt = RequestNeeds(prompt_tokens=250_000, output_tokens_reserved=1_000)
    assert ids(plan(RouteRequest(), needs=long_prompt)) == ["openai/gpt-top"]


def test_route_require_and_allow_lists() -> None:
    assert ids(plan(RouteRequest(require=("json_mode",), providers=("cheapco", "groq")))) == [
        "groq/llama-3.3-70b-versatile"
    ]
    assert set(ids(plan(RouteRequest(models=("llama-3.3-70b", "openai/gpt-top"))))) == {
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "openai/gpt-top",
    }


def test_only_configured_providers_are_candidates() -> None:
    route_plan = plan_route(
        CATALOG,
        route=RouteRequest(),
        needs=NEEDS,
        health={},
        providers_available={"groq"},
        task=RouteTask(),
        candidates_max=10,
    )
    assert ids(route_plan) == ["groq/llama-3.3-70b-versatile"]


def test_price_ceilings_per_mtok_and_per_request() -> None:
    per_mtok = RouteRequest.model_validate(
        {"strategy": "cost", "max_price": {"prompt": "1", "completion": 2}}
    )
    assert set(ids(plan(per_mtok))) == {
        "cheapco/tiny",
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "openai/gpt-mid",
    }
    # Quote at gpt-mid with 1,000 prompt and 1,000 output tokens: 400,000 + 1,600,000 nano-USD.
    assert "openai/gpt-mid" in ids(plan(RouteRequest(max_price=2_000_000)))
    assert "openai/gpt-mid" not in ids(plan(RouteRequest(max_price=1_999_999)))


def test_nothing_left_raises_with_reasons() -> None:
    with pytest.raises(NoRouteCandidate) as caught:
        plan(RouteRequest(max_price=1))
    assert caught.value.code == "no_route_candidate"
    assert any("quote above max_price" in reason for reason in caught.value.reasons)


def test_explicit_model_fails_over_to_its_other_providers_only() -> None:
    route_plan = plan(
        RouteRequest(strategy="cost"), requested_model="together/meta-llama/Llama-3.3-70B-Instruct-Turbo"
    )
    assert ids(route_plan) == [
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "groq/llama-3.3-70b-versatile",
    ]
    assert route_plan.needed_quality == 70


def test_explicit_model_by_neutral_name_ranks_its_providers() -> None:
    assert ids(plan(RouteRequest(strategy="cost"), requested_model="llama-3.3-70b")) == [
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ]


def test_explicit_model_listed_fallbacks_then_strategy_fallbacks() -> None:
    listed = plan(
        RouteRequest(strategy="cost", models=("openai/gpt-top", "cheapco/tiny")),
        requested_model="groq/llama-3.3-70b-versatile",
    )
    assert ids(listed) == [
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "openai/gpt-top",
        "cheapco/tiny",
    ]
    anything = plan(
        RouteRequest(strategy="cost", allow_fallbacks=True), requested_model="groq/llama-3.3-70b-versatile"
    )
    assert ids(anything)[:3] == [
        "groq/llama-3.3-70b-versatile",
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "openai/gpt-mid",
    ]
    assert len(ids(anything)) == 6


def test_explicit_model_with_open_breaker_goes_after_its_sibling() -> None:
    health_by_id = {
        "groq/llama-3.3-70b-versatile": health_record("groq/llama-3.3-70b-versatile", breaker="open")
    }
    route_plan = plan(
        RouteRequest(), requested_model="groq/llama-3.3-70b-versatile", health_by_id=health_by_id
    )
    assert ids(route_plan) == [
        "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "groq/llama-3.3-70b-versatile",
    ]


def test_unknown_explicit_or_listed_model_is_invalid_route() -> None:
    with pytest.raises(InvalidRoute, match="does not exist") as caught:
        plan(RouteRequest(), requested_model="nobody/nothing")
    assert caught.value.param == "model"
    with pytest.raises(InvalidRoute, match="unknown model"):
        plan(RouteRequest(models=("nothing-at-all",)))


def test_candidates_are_cut_to_the_limit() -> None:
    assert len(plan(RouteRequest(), candidates_max=2).candidates) == 2


def test_real_catalog_every_strategy_plans_quickly() -> None:
    catalog = load_catalog()
    for strategy in ("balanced", "cost", "latency", "availability"):
        route_plan = plan_route(
            catalog,
            route=RouteRequest(strategy=strategy),
            needs=RequestNeeds(prompt_tokens=2_000, tools=True),
            health={},
            providers_available=set(catalog.providers()),
            task=RouteTask("code", 0.7),
        )
        assert len(route_plan.candidates) == 5
        assert all(c.capabilities.tools and not c.capabilities.embeddings for c in route_plan.candidates)
        assert all((c.quality.code or 0) >= route_plan.needed_quality for c in route_plan.candidates)


def test_the_classifiers_task_profile_drives_auto_routing() -> None:
    catalog = load_catalog()
    profile = classify_request(
        [{"role": "user", "content": "Prove that the square root of 2 is irrational."}]
    )
    route_plan = plan_route(
        catalog,
        route=RouteRequest(strategy="cost"),
        needs=RequestNeeds(prompt_tokens=profile.prompt_tokens_estimate, vision=profile.image_count > 0),
        health={},
        providers_available=set(catalog.providers()),
        task=profile,
    )
    assert route_plan.task_kind == profile.kind
    assert all(
        (c.quality.for_task(route_plan.task_kind) or 0) >= route_plan.needed_quality
        for c in route_plan.candidates
    )


def test_balanced_does_not_buy_a_far_stronger_model_at_many_times_the_price() -> None:
    """Headroom above the need is capped: 20x the price is never worth being stronger alone."""
    easy = plan(RouteRequest(strategy="balanced"), task=RouteTask("chat", 0.0), health_by_id={})
    # Need 55: tiny (56) meets it at a fraction of the others' price; the top models are ~30x dearer.
    assert ids(easy)[0] == "cheapco/tiny"
    assert ids(easy).index("openai/gpt-top") > ids(easy).index("openai/gpt-mid")


def test_auto_spreads_easy_and_hard_prompts_over_the_real_catalog() -> None:
    """On the shipped catalog, hard prompts must go strong in every strategy; easy ones go cheap under the
    price-aware strategies (latency and availability break fresh-health ties by quality, by design)."""
    catalog = load_catalog()
    for strategy in ("balanced", "cost", "latency", "availability"):
        chosen = {
            difficulty: plan_route(
                catalog,
                route=RouteRequest(strategy=strategy),
                needs=RequestNeeds(prompt_tokens=300),
                health={},
                providers_available=set(catalog.providers()),
                task=RouteTask("reasoning", difficulty),
            ).candidates[0]
            for difficulty in (0.02, 0.95)
        }
        assert (chosen[0.95].quality.reasoning or 0) >= 85, strategy
        if strategy in ("balanced", "cost"):
            assert (chosen[0.02].quality.reasoning or 0) < 85, strategy
            cheap = chosen[0.02].output_price_nano_usd_per_mtok
            assert cheap < chosen[0.95].output_price_nano_usd_per_mtok, strategy


def unrated(model_id: str, *, output_usd: float) -> CatalogModel:
    rated = model(model_id, quality=50, input_usd=0.01, output_usd=output_usd)
    return rated.model_copy(update={"quality": ModelQuality(rated=False, basis="no public figure")})


def test_unrated_models_serve_only_when_allowed_or_when_nothing_rated_fits() -> None:
    mystery = unrated("cheapco/mystery", output_usd=0.01)
    catalog = [*CATALOG, mystery]

    def route_plan(route: RouteRequest, task: RouteTask = MEDIUM_CHAT) -> RoutePlan:
        return plan_route(
            catalog,
            route=route,
            needs=NEEDS,
            health={},
            providers_available=PROVIDERS,
            task=task,
            candidates_max=10,
        )

    for strategy in ("cost", "balanced", "latency", "availability"):
        # Not allowed: after every rated model, even the ones below the need, though it is the cheapest.
        assert ids(route_plan(RouteRequest(strategy=strategy)))[-1] == "cheapco/mystery"
    allowed = route_plan(RouteRequest(strategy="cost", allow_unrated=True))
    assert ids(allowed)[0] == "cheapco/mystery"
    assert "cheapco/mystery: unrated, allowed by the caller" in allowed.reasons
    # Only unrated models pass the caller's allow-list: served, and the plan says why.
    only = route_plan(RouteRequest(strategy="cost", models=("cheapco/mystery",)))
    assert ids(only) == ["cheapco/mystery"]
    assert "cheapco/mystery: unrated, no rated model fits" in only.reasons


def test_an_explicit_unrated_model_keeps_its_fallbacks_at_the_task_need() -> None:
    catalog = [*CATALOG, unrated("cheapco/mystery", output_usd=0.01)]
    route_plan = plan_route(
        catalog,
        route=RouteRequest(strategy="cost", allow_fallbacks=True),
        needs=NEEDS,
        health={},
        providers_available=PROVIDERS,
        task=MEDIUM_CHAT,
        requested_model="cheapco/mystery",
    )
    assert ids(route_plan)[0] == "cheapco/mystery"
    assert route_plan.needed_quality == 65
    assert ids(route_plan)[1] == "groq/llama-3.3-70b-versatile"  # cheapest rated model meeting 65
