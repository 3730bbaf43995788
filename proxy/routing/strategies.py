"""Strategies: from the catalog, the caller's `route`, the task and live health to an ordered failover list.

`plan_route` is pure and synchronous: the handler reads health first (`await tracker.snapshots()`),
then calls it. Steps:
1. Hard requirements filter (proxy/routing/requirements.py): never an embeddings model, only
   configured providers, allow-lists, capabilities used or required, context window, price ceiling.
2. The needed quality: from the task (see `needed_quality` and QUALITY_NEEDED_RANGE), or, for an
   explicitly named model, that model's own quality for the task kind (its fallbacks should be about
   as good as what was asked). The classifier's difficulty is P(demanding) (proxy/routing/classifier.py),
   so the map below spreads prompts over the catalog's quality tiers: easy prompts may use cheap
   models, hard ones must use strong ones, under every strategy. Quality scores are cited public
   figures (catalog `quality.rated`); a model without one is unrated.
3. Ranking. Within every strategy, deployments group as: (a) meeting the needed quality (and, with
   `route.allow_unrated`, unrated ones), ranked by the strategy; (b) below it, best quality first (used
   only when (a) is exhausted); (b') unrated, by the strategy, when the caller did not allow them; (c)
   breaker open, in the same order (kept last so a request still has somewhere to go when everything is
   cooling down; `try_acquire` refuses them until their cool-down ends). The strategy keys:
   - cost: cheapest expected cost for this request; ties to higher quality.
   - latency: closed before half-open, then lowest latency EWMA (time to first token when streaming
     and known; `LATENCY_PRIOR_S` for a deployment never measured), ties to higher quality.
   - availability: closed before half-open, lowest smoothed error rate (failures+1)/(requests+2) over
     the window, widest redundancy (healthy deployments of the same model in the pool), quality, cost.
   - balanced: highest score in quality points, `min(quality − needed, BALANCED_HEADROOM_POINTS_MAX)
     − BALANCED_POINTS_PER_COST_DOUBLING·log2((cost + c0)/(cheapest + c0)) − BALANCED_LATENCY_POINTS·
     latency/slowest − BALANCED_ERROR_POINTS·error_rate` (c0 = BALANCED_COST_FLOOR_NANO_USD keeps a
     near-free model from making every other one look infinitely dear). Headroom above the need is
     worth something (a margin for a misjudged prompt) but is capped: a model 25 points above the need
     counts like one 5 above, so it cannot win by being stronger alone. Each doubling of the expected
     cost costs 4 points: a model at 20x the price (−17 points) always loses to one that meets the
     need, while 1.2x the price for 4 more points of margin is worth it and 2x for 5 more is not.
4. For an explicitly named model: the named deployment, then its other providers (the same canonical
   model, ranked as above), then `route.models` in the caller's order, then — only with
   `route.allow_fallbacks` — the rest of the pool by the strategy.
The plan is cut to `candidates_max`: the hold covers the most expensive candidate in it.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from proxy.catalog import TASK_KINDS, CatalogModel, TaskKind
from proxy.money import TOKENS_PER_MTOK, div_ceil
from proxy.routing.candidates import ModelIndex, resolve_model_names, resolve_requested_model
from proxy.routing.errors import NoRouteCandidate
from proxy.routing.health import DeploymentHealth
from proxy.routing.requirements import RequestNeeds, RouteRequest, Strategy, filter_deployments

__all__ = [
    "BALANCED_COST_FLOOR_NANO_USD",
    "BALANCED_ERROR_POINTS",
    "BALANCED_HEADROOM_POINTS_MAX",
    "BALANCED_LATENCY_POINTS",
    "BALANCED_POINTS_PER_COST_DOUBLING",
    "EXPECTED_OUTPUT_TOKENS",
    "LATENCY_PRIOR_S",
    "MEDIUM_QUALITY",
    "QUALITY_NEEDED_RANGE",
    "RoutePlan",
    "RouteTask",
    "TaskLike",
    "expected_cost_nano_usd",
    "needed_quality",
    "plan_route",
    "rank_deployments",
]

# Latency assumed for a deployment with no measurement yet: typical for a short chat completion, so a
# new deployment is tried before ones measured slower and after ones measured faster.
LATENCY_PRIOR_S = 2.0
# Replies are a few hundred tokens whatever max_tokens says; ranking by expected (not worst) cost.
EXPECTED_OUTPUT_TOKENS = 400

# Needed quality, per task kind, on the catalog's 0..100 scale (overall = (Arena Elo - 1000) / 5.5, from
# cited public figures), is piecewise linear in the classifier's difficulty d = P(demanding): the kind's
# floor at d = 0, MEDIUM_QUALITY at d = 0.5 and the kind's ceiling at d = 1. Anchors, not fitted to the
# bench: the floor admits the cheap rated open-weights tier (Gemma 3 27B, 66; DeepSeek V3, 70) for a
# greeting; MEDIUM_QUALITY is the tier of the 2025 "flash" models (Gemini 2.5 Flash, 76) for a prompt the
# classifier cannot call; the ceiling is the top tier's lower edge (Gemini 3.1 Pro, 90; GPT-5.5, 89) for a
# proof or a system design. Code, math and reasoning punish weak models harder: higher floor and ceiling.
MEDIUM_QUALITY = 76
QUALITY_NEEDED_RANGE: Mapping[TaskKind, tuple[int, int]] = {
    "chat": (55, 89),
    "summarization": (55, 89),
    "extraction": (55, 89),
    "code": (60, 90),
    "math": (60, 90),
    "reasoning": (60, 90),
}
assert set(QUALITY_NEEDED_RANGE) == set(TASK_KINDS)
assert all(floor < MEDIUM_QUALITY < ceiling for floor, ceiling in QUALITY_NEEDED_RANGE.values())

# Balanced score, in quality points (see the module docstring).
BALANCED_HEADROOM_POINTS_MAX = 5.0
BALANCED_POINTS_PER_COST_DOUBLING = 4.0
BALANCED_LATENCY_POINTS = 3.0  # at the pool's slowest latency
BALANCED_ERROR_POINTS = 10.0  # at a 100% smoothed error rate
BALANCED_COST_FLOOR_NANO_USD = 1_000  # 1e-6 USD: below this, price differences stop mattering


class TaskLike(Protocol):
    """What routing needs from the classifier's judgement (proxy.routing.classifier.TaskProfile fits)."""

    @property
    def kind(self) -> str: ...
    @property
    def difficulty(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RouteTask:
    """A task judgement built by hand (tests, explicit models, a per-key default)."""

    kind: TaskKind = "chat"
    difficulty: float = 0.5


def needed_quality(kind: str, difficulty: float) -> int:
    """The quality (0..100) a model needs for this task kind at this difficulty (P(demanding), clamped)."""
    assert not math.isnan(difficulty)
    floor, ceiling = QUALITY_NEEDED_RANGE[_task_kind(kind)]
    share = min(1.0, max(0.0, difficulty))
    if share <= 0.5:
        quality = floor + share / 0.5 * (MEDIUM_QUALITY - floor)
    else:
        quality = MEDIUM_QUALITY + (share - 0.5) / 0.5 * (ceiling - MEDIUM_QUALITY)
    needed = round(quality)
    assert floor <= needed <= ceiling
    return needed


class RoutePlan(BaseModel):
    """The ordered failover list and why it looks the way it does (for headers, logs and errors)."""

    model_config = ConfigDict(frozen=True)

    candidates: list[CatalogModel] = Field(min_length=1)
    strategy: Strategy
    task_kind: TaskKind
    needed_quality: int
    reasons: list[str]


def expected_cost_nano_usd(model: CatalogModel, needs: RequestNeeds) -> int:
    """The cost ranking uses: prompt estimate plus a typical reply, at list prices (not the quote)."""
    output_tokens = EXPECTED_OUTPUT_TOKENS
    if needs.output_tokens_max is not None:
        output_tokens = min(output_tokens, needs.output_tokens_max)
    total = (
        needs.prompt_tokens * model.input_price_nano_usd_per_mtok
        + output_tokens * model.output_price_nano_usd_per_mtok
    )
    return div_ceil(total, TOKENS_PER_MTOK)


def _latency_s(health: DeploymentHealth | None, *, streaming: bool) -> float:
    if health is None:
        return LATENCY_PRIOR_S
    if streaming and health.ttft_ewma_s is not None:
        return health.ttft_ewma_s
    return LATENCY_PRIOR_S if health.latency_ewma_s is None else health.latency_ewma_s


def _smoothed_error_rate(health: DeploymentHealth | None) -> float:
    if health is None:
        return 0.5
    return (health.failures_in_window + 1) / (health.requests_in_window + 2)


def _half_open(health: DeploymentHealth | None) -> bool:
    return health is not None and health.breaker == "half_open"


def _open(health: DeploymentHealth | None) -> bool:
    return health is not None and health.breaker == "open"


def _cheapest_expected_cost(pool: Sequence[CatalogModel], needs: RequestNeeds) -> int:
    """min(expected_cost_nano_usd) over the pool (0 when empty), in one pass: the ceiling of the smallest
    numerator is the smallest ceiling."""
    if not pool:
        return 0
    output_tokens = EXPECTED_OUTPUT_TOKENS
    if needs.output_tokens_max is not None:
        output_tokens = min(output_tokens, needs.output_tokens_max)
    prompt_tokens = needs.prompt_tokens
    smallest = min(
        prompt_tokens * m.input_price_nano_usd_per_mtok + output_tokens * m.output_price_nano_usd_per_mtok
        for m in pool
    )
    return div_ceil(smallest, TOKENS_PER_MTOK)


def _slowest_latency_s(
    pool: Sequence[CatalogModel], health: Mapping[str, DeploymentHealth], *, streaming: bool
) -> float:
    """max(_latency_s) over the pool (0.0 when empty): the deployments without a health record all count
    the prior, so only the recorded ones need reading."""
    if not pool:
        return 0.0
    recorded = [_latency_s(health[m.id], streaming=streaming) for m in pool if m.id in health]
    if len(recorded) < len(pool):
        recorded.append(LATENCY_PRIOR_S)
    return max(recorded)


def _strategy_key(
    strategy: Strategy,
    pool: list[CatalogModel],
    *,
    kind: TaskKind,
    quality_needed: int,
    needs: RequestNeeds,
    health: Mapping[str, DeploymentHealth],
    index: ModelIndex,
) -> Callable[[CatalogModel], tuple[float | int | str, ...]]:
    """The sort key (ascending = better) of the cost, latency or availability strategy over this pool (the
    balanced one has a key of its own, `_balanced_grouped_key`). Each model is keyed once per ranking."""

    def quality(m: CatalogModel) -> int:
        # An unrated model ranked here counts as just meeting the need (no headroom, no tie advantage).
        score = m.quality.for_task(kind)
        return quality_needed if score is None else score

    def cost_of(m: CatalogModel) -> int:
        return expected_cost_nano_usd(m, needs)

    def latency_of(m: CatalogModel) -> float:
        return _latency_s(health.get(m.id), streaming=needs.streaming)

    if strategy == "cost":
        return lambda m: (cost_of(m), -quality(m), m.id)
    if strategy == "latency":
        return lambda m: (_half_open(health.get(m.id)), latency_of(m), -quality(m), m.id)
    if strategy == "availability":
        healthy = Counter(index.key(m) for m in pool if not _open(health.get(m.id)))
        return lambda m: (
            _half_open(health.get(m.id)),
            _smoothed_error_rate(health.get(m.id)),
            -healthy[index.key(m)],
            -quality(m),
            cost_of(m),
            m.id,
        )
    raise AssertionError(f"the balanced strategy has its own sort key: {strategy}")


GroupedKey = tuple[bool, int, tuple[float | int | str, ...]]


def _balanced_grouped_key(
    pool: list[CatalogModel],
    *,
    kind: TaskKind,
    quality_needed: int,
    needs: RequestNeeds,
    health: Mapping[str, DeploymentHealth],
    allow_unrated: bool,
) -> Callable[[CatalogModel], GroupedKey]:
    """`rank_deployments`' whole sort key (group, then the balanced score) for the balanced strategy, with
    everything one model needs in one call (its cost through `expected_cost_nano_usd`, as every strategy):
    `auto` ranks the whole pool on every request, and nested helper calls per model cost more than the
    arithmetic. The score is the module docstring's formula, its terms
    computed in the same order as written there (a test holds it to that definition)."""
    cost_floor = _cheapest_expected_cost(pool, needs) + BALANCED_COST_FLOOR_NANO_USD
    latency_max = _slowest_latency_s(pool, health, streaming=needs.streaming) or 1.0
    streaming = needs.streaming
    unrated_group = 0 if allow_unrated else 2
    # Most deployments have no health record: their latency and error terms are the priors', once.
    unrecorded_latency_term = BALANCED_LATENCY_POINTS * LATENCY_PRIOR_S / latency_max
    unrecorded_error_term = BALANCED_ERROR_POINTS * _smoothed_error_rate(None)

    def grouped(m: CatalogModel) -> GroupedKey:
        recorded = health.get(m.id)
        rated = m.quality.for_task(kind)
        quality = quality_needed if rated is None else rated
        cost = expected_cost_nano_usd(m, needs)
        headroom = min(float(quality - quality_needed), BALANCED_HEADROOM_POINTS_MAX)
        cost_doublings = math.log2((cost + BALANCED_COST_FLOOR_NANO_USD) / cost_floor)
        if recorded is None:
            latency_term, error_term, is_open = unrecorded_latency_term, unrecorded_error_term, False
        else:
            latency_term = BALANCED_LATENCY_POINTS * _latency_s(recorded, streaming=streaming) / latency_max
            error_term = BALANCED_ERROR_POINTS * _smoothed_error_rate(recorded)
            is_open = recorded.breaker == "open"
        score = headroom - BALANCED_POINTS_PER_COST_DOUBLING * cost_doublings - latency_term - error_term
        key = (-score, m.id)
        if rated is None:
            return (is_open, unrated_group, key)
        if rated >= quality_needed:
            return (is_open, 0, key)
        return (is_open, 1, (-rated, *key))

    return grouped


def rank_deployments(
    pool: list[CatalogModel],
    *,
    strategy: Strategy,
    kind: TaskKind,
    quality_needed: int,
    needs: RequestNeeds,
    health: Mapping[str, DeploymentHealth],
    index: ModelIndex | None = None,
    among: Collection[str] | None = None,
    allow_unrated: bool = False,
    keep: int | None = None,
) -> list[CatalogModel]:
    """Order `pool` by the strategy within the groups: meets quality, below quality, unrated, breaker open.

    Unrated models (no cited quality figure) join the first group when `allow_unrated`, counted as just
    meeting the need; otherwise they come after every rated model, so they serve only when nothing
    rated passes the hard requirements (or every rated one fails).

    With `among`, only those ids of the pool are returned, in the order they have in the whole pool's
    ranking (the strategy's scale, e.g. the slowest latency, is still taken over the whole pool): an
    explicitly named model without fallbacks needs a handful of deployments ordered, not the catalog.
    With `keep`, only the first `keep` of the ranking are returned (what `auto` keeps as candidates).
    """
    grouped: Callable[[CatalogModel], GroupedKey]
    if strategy == "balanced":
        grouped = _balanced_grouped_key(
            pool,
            kind=kind,
            quality_needed=quality_needed,
            needs=needs,
            health=health,
            allow_unrated=allow_unrated,
        )
    else:
        key = _strategy_key(
            strategy,
            pool,
            kind=kind,
            quality_needed=quality_needed,
            needs=needs,
            health=health,
            index=ModelIndex.build(pool) if index is None else index,
        )

        def grouped(model: CatalogModel) -> GroupedKey:
            quality = model.quality.for_task(kind)
            if quality is None:
                return (_open(health.get(model.id)), 0 if allow_unrated else 2, key(model))
            if quality >= quality_needed:
                return (_open(health.get(model.id)), 0, key(model))
            return (_open(health.get(model.id)), 1, (-quality, *key(model)))

    chosen = pool if among is None else [model for model in pool if model.id in among]
    if keep is not None:
        # The same as sorted(...)[:keep] (heapq's documented equivalence), without ordering the rest.
        return heapq.nsmallest(keep, chosen, key=grouped)
    ranked = sorted(chosen, key=grouped)
    assert len(ranked) == len(chosen)
    return ranked


def _explicit_order(
    ranked: list[CatalogModel],
    *,
    exact: CatalogModel | None,
    model_key: str,
    listed: list[list[CatalogModel]],
    allow_fallbacks: bool,
    index: ModelIndex,
) -> list[CatalogModel]:
    """Named deployment, its other providers, the caller's listed fallbacks, then (maybe) the rest."""
    ordered: dict[str, CatalogModel] = {}
    in_pool = {model.id for model in ranked}
    if exact is not None and exact.id in in_pool:
        ordered[exact.id] = exact
    for model in ranked:
        if index.key(model) == model_key:
            ordered.setdefault(model.id, model)
    for group in listed:
        group_ids = {model.id for model in group}
        for model in ranked:
            if model.id in group_ids:
                ordered.setdefault(model.id, model)
    if allow_fallbacks:
        for model in ranked:
            ordered.setdefault(model.id, model)
    return list(ordered.values())


def plan_route(
    models: Iterable[CatalogModel] | ModelIndex,
    *,
    route: RouteRequest,
    needs: RequestNeeds,
    health: Mapping[str, DeploymentHealth],
    providers_available: Collection[str],
    task: TaskLike | None = None,
    requested_model: str | None = None,
    candidates_max: int = 5,
) -> RoutePlan:
    """The ordered deployments to try for one request; raises `NoRouteCandidate` when none qualifies.

    `requested_model` is the body's `model`: None or "auto" lets the strategy choose; anything else
    is a catalog id or a provider-neutral name (`InvalidRoute` when unknown). `health` maps deployment
    ids to snapshots; a missing id counts as a fresh, closed deployment. Pass the catalog's `ModelIndex`
    (built once) rather than its models to spare every request the canonical-key work.
    """
    assert candidates_max >= 1
    index = models if isinstance(models, ModelIndex) else ModelIndex.build(models)
    catalog = index.models
    kind: TaskKind = "chat" if task is None else _task_kind(task.kind)
    difficulty = 0.5 if task is None else task.difficulty
    explicit = requested_model is not None and requested_model != "auto"
    exact, model_key = (None, "")
    if requested_model is not None and explicit:
        exact, model_key = resolve_requested_model(index, requested_model)
    listed = resolve_model_names(index, route.models) if route.models else []
    allowed: set[str] | None = {m.id for group in listed for m in group} if route.models else None
    if allowed is not None and explicit:
        allowed |= {m.id for m in index.same_model(model_key)}
    pool, excluded = filter_deployments(
        catalog,
        route=route,
        needs=needs,
        providers_available=providers_available,
        models_allowed=allowed,
        static_pools=index.static_pools,
    )
    reasons = [
        f"excluded {count}: {why}" for why, count in sorted(excluded.items(), key=lambda item: -item[1])
    ]
    quality = needed_quality(kind, difficulty)
    if explicit:
        named = index.same_model(model_key)
        rated = [m.quality.for_task(kind) for m in ([exact] if exact is not None else named)]
        scores = [score for score in rated if score is not None]
        # An unrated named model: its fallbacks need what the task needs.
        quality = max(scores) if scores else quality
    among: set[str] | None = None
    if explicit and not route.allow_fallbacks:
        # Only these can be kept by `_explicit_order`; ranking the rest of the pool would be thrown away.
        among = {m.id for m in index.same_model(model_key)} | {m.id for group in listed for m in group}
        if exact is not None:
            among.add(exact.id)
    ranked = rank_deployments(
        pool,
        strategy=route.strategy,
        kind=kind,
        quality_needed=quality,
        needs=needs,
        health=health,
        index=index,
        among=among,
        allow_unrated=route.allow_unrated,
        # Only an explicit model's order needs every deployment ranked (its fallbacks come from the rest).
        keep=None if explicit else candidates_max,
    )
    if explicit:
        ranked = _explicit_order(
            ranked,
            exact=exact,
            model_key=model_key,
            listed=listed,
            allow_fallbacks=route.allow_fallbacks,
            index=index,
        )
        # The named deployment goes first only while it admits traffic; open breakers go last, as always.
        ranked = [m for m in ranked if not _open(health.get(m.id))] + [
            m for m in ranked if _open(health.get(m.id))
        ]
    eligible = len(ranked) if explicit else len(pool)
    if not ranked:
        what = f"model '{requested_model}'" if explicit else "any model"
        raise NoRouteCandidate(
            f"no deployment of {what} meets the request's requirements", reasons=tuple(reasons)
        )
    candidates = ranked[:candidates_max]
    reasons.append(
        f"strategy {route.strategy} for {kind} (difficulty {difficulty:.2f}) needs quality {quality}"
    )
    reasons.append(f"{len(candidates)} of {eligible} eligible deployments kept as candidates")
    for model in candidates:
        if _open(health.get(model.id)):
            reasons.append(f"{model.id}: breaker open, kept last")
        elif not model.quality.rated:
            allowed_why = "allowed by the caller" if route.allow_unrated else "no rated model fits"
            reasons.append(f"{model.id}: unrated, {allowed_why}")
    return RoutePlan(
        candidates=candidates,
        strategy=route.strategy,
        task_kind=kind,
        needed_quality=quality,
        reasons=reasons,
    )


def _task_kind(kind: str) -> TaskKind:
    for known in TASK_KINDS:
        if kind == known:
            return known
    raise AssertionError(f"unknown task kind {kind!r}")
