"""Property: whatever the request, the route object and the health, no candidate breaks a hard requirement.

Method: Hypothesis draws route objects, request needs, health snapshots, configured providers, tasks and
requested models over the real catalog, and checks every planned candidate against an independent
restatement of the requirements; for `model: "auto"` the plan must also hold every eligible deployment
(when the limit allows), and open breakers must never come before one that admits traffic.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from proxy.catalog import TASK_KINDS, CatalogModel, TaskKind, load_catalog
from proxy.routing.candidates import canonical_model_key, canonical_model_name
from proxy.routing.errors import NoRouteCandidate
from proxy.routing.health import DeploymentHealth
from proxy.routing.requirements import CAPABILITIES, PriceCeiling, RequestNeeds, RouteRequest
from proxy.routing.strategies import RouteTask, plan_route
from tests.fixtures.health_records import health_record

CATALOG = tuple(load_catalog())
IDS = [model.id for model in CATALOG]
BY_ID = {model.id: model for model in CATALOG}
PROVIDERS = sorted({model.provider for model in CATALOG})
NEUTRAL_NAMES = sorted({canonical_model_key(model) for model in CATALOG})


def snapshots(draw: st.DrawFn) -> dict[str, DeploymentHealth]:
    chosen = draw(st.lists(st.sampled_from(IDS), max_size=40, unique=True))
    result = {}
    for deployment_id in chosen:
        requests = draw(st.integers(0, 200))
        failures = draw(st.integers(0, requests))
        result[deployment_id] = health_record(
            deployment_id,
            breaker=draw(st.sampled_from(["closed", "open", "half_open"])),
            latency_s=draw(st.none() | st.floats(0.01, 60.0)),
            ttft_s=draw(st.none() | st.floats(0.01, 30.0)),
            requests=requests,
            failures=failures,
        )
    return result


# Each restriction is often absent (`st.just(default) | …`), so that most draws leave something to plan.
price = st.integers(0, 80_000_000_000)
ceilings = st.none() | st.builds(
    PriceCeiling,
    input_nano_usd_per_mtok=st.none() | price,
    output_nano_usd_per_mtok=price,
    request_nano_usd=st.none() | st.integers(0, 10_000_000_000),
)
names = st.sampled_from(IDS) | st.sampled_from(NEUTRAL_NAMES)
routes = st.builds(
    RouteRequest,
    strategy=st.sampled_from(["balanced", "cost", "latency", "availability"]),
    max_price=st.none() | ceilings,
    models=st.just(()) | st.lists(names, max_size=4, unique=True).map(tuple),
    providers=st.just(()) | st.lists(st.sampled_from(PROVIDERS), max_size=5, unique=True).map(tuple),
    require=st.just(()) | st.lists(st.sampled_from(CAPABILITIES), max_size=3, unique=True).map(tuple),
    allow_fallbacks=st.booleans(),
)
needs_strategy = st.builds(
    RequestNeeds,
    prompt_tokens=st.integers(0, 4_000) | st.integers(0, 400_000),
    output_tokens_reserved=st.integers(1, 1_000) | st.integers(1, 20_000),
    output_tokens_max=st.none() | st.integers(1, 200_000),
    tools=st.booleans(),
    vision=st.booleans(),
    json_mode=st.booleans(),
    streaming=st.booleans(),
)


def allowed_ids(route: RouteRequest, requested: str | None) -> set[str] | None:
    """route.models as ids: a catalog id means itself, a neutral name every deployment of that model;
    with an explicit model, every deployment of the requested model is allowed too."""
    if not route.models:
        return None
    allowed: set[str] = set()
    for name in route.models:
        allowed |= {name} if name in BY_ID else by_key(canonical_model_name(name))
    if requested is not None and requested != "auto":
        key = canonical_model_key(BY_ID[requested]) if requested in BY_ID else canonical_model_name(requested)
        allowed |= by_key(key)
    return allowed


def by_key(key: str) -> set[str]:
    return {m.id for m in CATALOG if canonical_model_key(m) == key}


def eligible(
    model: CatalogModel,
    route: RouteRequest,
    needs: RequestNeeds,
    providers: set[str],
    allowed: set[str] | None,
) -> bool:
    used = {name for name in ("tools", "vision", "json_mode", "streaming") if getattr(needs, name)}
    prompt_max = needs.prompt_tokens if needs.prompt_tokens_max is None else needs.prompt_tokens_max
    output_max = min(model.max_output_tokens, needs.output_tokens_max or model.max_output_tokens)
    quote = -(
        -(
            prompt_max * model.input_price_nano_usd_per_mtok
            + output_max * model.output_price_nano_usd_per_mtok
        )
        // 1_000_000
    )
    ceiling = route.max_price
    return (
        not model.capabilities.embeddings
        and model.provider in providers
        and (not route.providers or model.provider in route.providers)
        and (allowed is None or model.id in allowed)
        and all(getattr(model.capabilities, name) for name in set(route.require) | used)
        and needs.prompt_tokens + needs.output_tokens_reserved <= model.context_window_tokens
        and (
            ceiling is None
            or (
                (
                    ceiling.input_nano_usd_per_mtok is None
                    or model.input_price_nano_usd_per_mtok <= ceiling.input_nano_usd_per_mtok
                )
                and (
                    ceiling.output_nano_usd_per_mtok is None
                    or model.output_price_nano_usd_per_mtok <= ceiling.output_nano_usd_per_mtok
                )
                and (ceiling.request_nano_usd is None or quote <= ceiling.request_nano_usd)
            )
        )
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    route=routes,
    needs=needs_strategy,
    health_by_id=st.composite(snapshots)(),
    providers=st.just(set(PROVIDERS)) | st.sets(st.sampled_from(PROVIDERS), min_size=1),
    kind=st.sampled_from(TASK_KINDS),
    difficulty=st.floats(0.0, 1.0),
    requested=st.none() | st.just("auto") | st.sampled_from(IDS) | st.sampled_from(NEUTRAL_NAMES),
    candidates_max=st.sampled_from([1, 3, 1_000]),
)
def test_hard_requirements_are_never_violated(
    route: RouteRequest,
    needs: RequestNeeds,
    health_by_id: dict[str, DeploymentHealth],
    providers: set[str],
    kind: TaskKind,
    difficulty: float,
    requested: str | None,
    candidates_max: int,
) -> None:
    allowed = allowed_ids(route, requested)
    reference = [m for m in CATALOG if eligible(m, route, needs, providers, allowed)]
    try:
        route_plan = plan_route(
            CATALOG,
            route=route,
            needs=needs,
            health=health_by_id,
            providers_available=providers,
            task=RouteTask(kind, difficulty),
            requested_model=requested,
            candidates_max=candidates_max,
        )
    except NoRouteCandidate:
        event("no candidate")
        if requested in (None, "auto"):
            assert reference == []
        return
    candidates = route_plan.candidates
    event(f"planned {min(len(candidates), 3)}+ candidates")
    assert 1 <= len(candidates) <= candidates_max
    assert len({c.id for c in candidates}) == len(candidates)
    reference_ids = {m.id for m in reference}
    for candidate in candidates:
        assert candidate.id in reference_ids, candidate.id
    if requested in (None, "auto") and candidates_max >= len(reference):
        assert {c.id for c in candidates} == reference_ids
    open_flags = [
        health_by_id.get(c.id) is not None and health_by_id[c.id].breaker == "open" for c in candidates
    ]
    assert open_flags == sorted(open_flags), "an open breaker came before a deployment admitting traffic"
