"""The balanced strategy's ranking — its own one-call sort key — equals the module docstring's definition
written out plainly, and keeping the first k of any strategy's ranking equals ranking all and cutting.

Method: Hypothesis draws a sub-pool of the real catalog, a task kind, the quality needed, a request size,
health records (latencies, failures, breaker states) and whether unrated models may be chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.catalog import TASK_KINDS, CatalogModel, TaskKind, load_catalog
from proxy.routing.health import DeploymentHealth
from proxy.routing.requirements import RequestNeeds
from proxy.routing.strategies import (
    BALANCED_COST_FLOOR_NANO_USD,
    BALANCED_ERROR_POINTS,
    BALANCED_HEADROOM_POINTS_MAX,
    BALANCED_LATENCY_POINTS,
    BALANCED_POINTS_PER_COST_DOUBLING,
    LATENCY_PRIOR_S,
    expected_cost_nano_usd,
    rank_deployments,
)
from tests.fixtures.health_records import health_record

CATALOG = tuple(load_catalog())
latencies = st.none() | st.floats(min_value=0.001, max_value=60)
records = st.tuples(
    st.sampled_from(["closed", "half_open", "open"]),
    latencies,
    latencies,
    st.integers(0, 50),
    st.integers(0, 50),
)


def _health(deployment_id: str, record: tuple[str, float | None, float | None, int, int]) -> DeploymentHealth:
    breaker, latency_s, ttft_s, requests, failures = record
    failures = min(failures, requests)
    return health_record(
        deployment_id,
        breaker=breaker,
        latency_s=latency_s,
        ttft_s=ttft_s,
        requests=requests,
        failures=failures,
    )


def _health_of(
    pool: list[CatalogModel], recorded: dict[int, tuple[str, float | None, float | None, int, int]]
) -> dict[str, DeploymentHealth]:
    """Health records for some of the pool's deployments (drawn by position)."""
    if not pool:
        return {}
    chosen = {pool[i % len(pool)].id: record for i, record in recorded.items()}
    return {deployment_id: _health(deployment_id, record) for deployment_id, record in chosen.items()}


def _defined_order(
    pool: list[CatalogModel],
    *,
    kind: TaskKind,
    quality_needed: int,
    needs: RequestNeeds,
    health: Mapping[str, DeploymentHealth],
    allow_unrated: bool,
) -> list[str]:
    """Groups (breaker open last; meets the need, below it, unrated), then the balanced score, then id."""

    def latency(m: CatalogModel) -> float:
        h = health.get(m.id)
        if h is None:
            return LATENCY_PRIOR_S
        if needs.streaming and h.ttft_ewma_s is not None:
            return h.ttft_ewma_s
        return LATENCY_PRIOR_S if h.latency_ewma_s is None else h.latency_ewma_s

    def error_rate(m: CatalogModel) -> float:
        h = health.get(m.id)
        return 0.5 if h is None else (h.failures_in_window + 1) / (h.requests_in_window + 2)

    cheapest = min((expected_cost_nano_usd(m, needs) for m in pool), default=0)
    slowest = max((latency(m) for m in pool), default=0.0) or 1.0

    def score(m: CatalogModel) -> float:
        rated = m.quality.for_task(kind)
        quality = quality_needed if rated is None else rated
        headroom = min(float(quality - quality_needed), BALANCED_HEADROOM_POINTS_MAX)
        doublings = math.log2(
            (expected_cost_nano_usd(m, needs) + BALANCED_COST_FLOOR_NANO_USD)
            / (cheapest + BALANCED_COST_FLOOR_NANO_USD)
        )
        return (
            headroom
            - BALANCED_POINTS_PER_COST_DOUBLING * doublings
            - BALANCED_LATENCY_POINTS * latency(m) / slowest
            - BALANCED_ERROR_POINTS * error_rate(m)
        )

    def key(m: CatalogModel) -> tuple[object, ...]:
        h = health.get(m.id)
        is_open = h is not None and h.breaker == "open"
        rated = m.quality.for_task(kind)
        if rated is None:
            return (is_open, 0 if allow_unrated else 2, 0, -score(m), m.id)
        if rated >= quality_needed:
            return (is_open, 0, 0, -score(m), m.id)
        return (is_open, 1, -rated, -score(m), m.id)

    return [m.id for m in sorted(pool, key=key)]


drawn = {
    "indexes": st.lists(st.integers(0, len(CATALOG) - 1), max_size=80, unique=True),
    "kind": st.sampled_from(TASK_KINDS),
    "quality_needed": st.integers(0, 100),
    "prompt_tokens": st.integers(0, 300_000),
    "output_max": st.none() | st.integers(1, 10_000),
    "streaming": st.booleans(),
    "recorded": st.dictionaries(st.integers(0, 79), records, max_size=40),
    "allow_unrated": st.booleans(),
}


@settings(max_examples=300, deadline=None)
@given(**drawn)
def test_balanced_ranking_is_the_definition(
    indexes: list[int],
    kind: TaskKind,
    quality_needed: int,
    prompt_tokens: int,
    output_max: int | None,
    streaming: bool,
    recorded: dict[int, tuple[str, float | None, float | None, int, int]],
    allow_unrated: bool,
) -> None:
    pool = [CATALOG[i] for i in indexes]
    needs = RequestNeeds(prompt_tokens=prompt_tokens, output_tokens_max=output_max, streaming=streaming)
    health = _health_of(pool, recorded)
    ranked = rank_deployments(
        pool,
        strategy="balanced",
        kind=kind,
        quality_needed=quality_needed,
        needs=needs,
        health=health,
        allow_unrated=allow_unrated,
    )
    assert [m.id for m in ranked] == _defined_order(
        pool,
        kind=kind,
        quality_needed=quality_needed,
        needs=needs,
        health=health,
        allow_unrated=allow_unrated,
    )


@settings(max_examples=200, deadline=None)
@given(
    strategy=st.sampled_from(["balanced", "cost", "latency", "availability"]),
    keep=st.integers(1, 10),
    **drawn,
)
def test_keeping_the_first_k_is_ranking_all_and_cutting(
    strategy: str,
    keep: int,
    indexes: list[int],
    kind: TaskKind,
    quality_needed: int,
    prompt_tokens: int,
    output_max: int | None,
    streaming: bool,
    recorded: dict[int, tuple[str, float | None, float | None, int, int]],
    allow_unrated: bool,
) -> None:
    pool = [CATALOG[i] for i in indexes]
    needs = RequestNeeds(prompt_tokens=prompt_tokens, output_tokens_max=output_max, streaming=streaming)
    health = _health_of(pool, recorded)
    arguments = {
        "strategy": strategy,
        "kind": kind,
        "quality_needed": quality_needed,
        "needs": needs,
        "health": health,
        "allow_unrated": allow_unrated,
    }
    everything = rank_deployments(pool, **arguments)  # type: ignore[arg-type]
    assert rank_deployments(pool, keep=keep, **arguments) == everything[:keep]  # type: ignore[arg-type]
