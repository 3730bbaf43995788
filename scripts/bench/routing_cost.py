#!/usr/bin/env python3
"""What `model: "auto"` costs on a mixed workload against always using the strongest model, and the quality
it keeps (issue 5), plus the classifier's APGR / CPT against the random and length baselines.

Workload: the held-out MMLU rows of tests/data/routing/mmlu_heldout.csv (never used in tuning), each with
whether a weak model (Mixtral-8x7B-Instruct) and a strong model (GPT-4-1106-preview) answered correctly
(RouteLLM's data). No server and no upstream are involved: every prompt goes, as a one-message request
with `model: "auto"`, through the router's own planning (proxy.serving.planning.plan_chat_request: the
classifier, the strategy, the catalog, fresh health with every deployment closed and no measurement),
and the first candidate of the plan is the model it would be served by.

Cost: each prompt's estimated input tokens (the router's own estimator) plus a fixed OUTPUT_TOKENS reply,
at the catalog's list prices, rounded up per request to a nano-USD; summed over the workload. The
baseline sends every prompt to the catalog's strongest chat model (highest overall quality).

Quality kept, the RouteLLM way: only two models' answers are known, so each routed model is mapped to the
weak or the strong column by its catalog quality for the classified task kind, against the catalog's own
entries for the two models of the data (together/mistralai/Mixtral-8x7B-Instruct-v0.1 and
openai/gpt-4-turbo, the family of gpt-4-1106-preview):
  - conservative (the headline): strong column only when the routed model's quality is at least the
    strong reference's; anything below it answers like the weak model. It never flatters: a model a
    point short of GPT-4-Turbo counts as Mixtral;
  - linear: the strong column with weight (quality − weak reference) / (strong − weak), clamped to 0..1
    (expected accuracy between the columns), the weak column with the rest;
  - nearest: strong column when the quality is at least the midpoint of the two references' qualities.
    Generous: the cheap open-weights tier (quality 67-70) counts as GPT-4.
Accuracy is then the (weighted) share of rows whose mapped column is correct; PGR = (accuracy − weak) /
(strong − weak), the share of the gap between the two models kept. The "strong tier" share is the weight
of the strong column. Next to it: the PGR a plain threshold router on the classifier's difficulty
(proxy.routing.evaluation's curve) reaches at the same strong share, and a random router's (= the share).
A second baseline with no routing at all: always the cheapest model at or above the strong reference's
overall quality. The "always strongest" baseline gets the strong column everywhere (its true accuracy is
unknown here; GPT-4-1106's stands in for it).

Usage: .venv/bin/python scripts/bench/routing_cost.py [--output-tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _harness import load_average_line, machine_description

from proxy.catalog import TASK_KINDS, Catalog, CatalogModel, TaskKind, load_catalog
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.tokens import estimate_prompt_tokens
from proxy.routing.classifier import classify_text, load_classifier_model
from proxy.routing.evaluation import CurvePoint, RouterEvaluation, accuracy_curve
from proxy.routing.health import InMemoryHealthTracker
from proxy.routing.route_eval_cli import evaluate_route_data, load_route_eval_data
from proxy.routing.strategies import needed_quality
from proxy.serving.planning import STRATEGY_HEADER, plan_chat_request
from proxy.settings import AssetSettings, Settings

HELDOUT_CSV = Path(__file__).resolve().parents[2] / "tests" / "data" / "routing" / "mmlu_heldout.csv"
WEAK_COLUMN = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_COLUMN = "gpt-4-1106-preview"
WEAK_REFERENCE_ID = "together/mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_REFERENCE_ID = "openai/gpt-4-turbo"
OUTPUT_TOKENS_DEFAULT = 400  # As proxy.routing.strategies.EXPECTED_OUTPUT_TOKENS: a typical reply.
STRATEGIES = ("balanced", "cost")
TOKENS_PER_MTOK = 1_000_000
NANO_USD_PER_USD = 1_000_000_000
RUN_TIMEOUT_S = 110.0
MAPPING_RULES = ("nearest", "linear", "conservative")
HEADLINE_RULE = "conservative"


@dataclass(frozen=True)
class Routed:
    model: CatalogModel
    task_kind: TaskKind
    prompt_tokens: int
    difficulty: float


def task_kind(kind: str) -> TaskKind:
    for known in TASK_KINDS:
        if kind == known:
            return known
    raise AssertionError(f"unknown task kind {kind!r}")


def planning_settings(default_model: str) -> Settings:
    """Only the routing fields matter to planning; chain and asset fields are placeholders, never used."""
    return Settings(
        chain_rpc_url="http://127.0.0.1:1",
        chain_id=31337,
        settlement_private_key="0x" + "11" * 32,
        assets=(
            AssetSettings(
                symbol="USDC", address="0x" + "00" * 20, eip712_name="USD Coin", eip712_version="2"
            ),
        ),
        default_model=default_model,
    )


def cost_nano_usd(model: CatalogModel, *, prompt_tokens: int, output_tokens: int) -> int:
    assert prompt_tokens > 0
    assert output_tokens > 0
    total = (
        prompt_tokens * model.input_price_nano_usd_per_mtok
        + output_tokens * model.output_price_nano_usd_per_mtok
    )
    return -(-total // TOKENS_PER_MTOK)


async def route_all(
    prompts: tuple[str, ...], catalog: Catalog, *, strategy: str, output_tokens: int
) -> list[Routed]:
    settings = planning_settings(STRONG_REFERENCE_ID)
    classifier = load_classifier_model()
    tracker = InMemoryHealthTracker()
    providers = frozenset(catalog.providers())
    routed: list[Routed] = []
    for prompt in prompts:
        body = ChatCompletionRequest.model_validate(
            {"model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": output_tokens}
        )
        plan = await plan_chat_request(
            body,
            headers={STRATEGY_HEADER: strategy},
            catalog=catalog,
            settings=settings,
            tracker=tracker,
            classifier=classifier,
            providers_available=providers,
        )
        profile = classify_text(prompt, classifier)
        routed.append(
            Routed(
                plan.candidates[0],
                task_kind(plan.task_kind),
                estimate_prompt_tokens(body),
                profile.difficulty,
            )
        )
    assert len(routed) == len(prompts)
    return routed


def usd(nano_usd: int) -> str:
    return f"${nano_usd / NANO_USD_PER_USD:.4f}"


def strongest_model(catalog: Catalog) -> CatalogModel:
    chat_models = [model for model in catalog if not model.capabilities.embeddings]
    return max(chat_models, key=lambda model: (model.quality.overall, model.id))


def print_workload(
    strategy: str,
    routed: list[Routed],
    *,
    catalog: Catalog,
    weak_correct: tuple[bool, ...],
    strong_correct: tuple[bool, ...],
    output_tokens: int,
) -> None:
    strongest = strongest_model(catalog)
    weak_ref, strong_ref = catalog.get(WEAK_REFERENCE_ID), catalog.get(STRONG_REFERENCE_ID)
    auto_cost = sum(
        cost_nano_usd(r.model, prompt_tokens=r.prompt_tokens, output_tokens=output_tokens) for r in routed
    )
    strongest_cost = sum(
        cost_nano_usd(strongest, prompt_tokens=r.prompt_tokens, output_tokens=output_tokens) for r in routed
    )
    rows = len(routed)
    weak_accuracy, strong_accuracy = sum(weak_correct) / rows, sum(strong_correct) / rows
    print(f"\nstrategy {strategy} (model auto), {rows} prompts, {output_tokens} output tokens each:")
    print(
        f"  cost: auto {usd(auto_cost)} vs always {strongest.id} {usd(strongest_cost)} -> "
        f"{auto_cost / strongest_cost:.3f}x ({100 * (1 - auto_cost / strongest_cost):.1f}% saved)"
    )
    tier_floor = strong_ref.quality.overall
    cheapest_strong = min(
        (m for m in catalog if not m.capabilities.embeddings and m.quality.overall >= tier_floor),
        key=lambda m: (cost_nano_usd(m, prompt_tokens=1_000, output_tokens=output_tokens), m.id),
    )
    cheapest_strong_cost = sum(
        cost_nano_usd(cheapest_strong, prompt_tokens=r.prompt_tokens, output_tokens=output_tokens)
        for r in routed
    )
    print(
        f"  (no routing, always the cheapest model at the strong reference's tier, {cheapest_strong.id} "
        f"(q {cheapest_strong.quality.overall}): {usd(cheapest_strong_cost)} -> "
        f"{cheapest_strong_cost / strongest_cost:.3f}x, PGR 1.000 under every mapping)"
    )
    kinds = Counter(r.task_kind for r in routed)
    print("  task kinds: " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
    chosen = Counter(r.model.id for r in routed)
    print(
        "  routed to: "
        + ", ".join(
            f"{model_id} {count} (q {catalog.get(model_id).quality.overall})"
            for model_id, count in chosen.most_common(6)
        )
        + (f", {len(chosen) - 6} more models" if len(chosen) > 6 else "")
    )
    print(
        f"  accuracy: weak column everywhere {weak_accuracy:.4f}, "
        f"strong column everywhere {strong_accuracy:.4f}"
    )
    curve = accuracy_curve(
        [r.difficulty for r in routed], weak_correct=weak_correct, strong_correct=strong_correct
    )
    for rule in MAPPING_RULES:
        strong_weight = [
            strong_tier_weight(r, rule, weak_ref=weak_ref, strong_ref=strong_ref) for r in routed
        ]
        correct = sum(
            weight * strong_correct[i] + (1.0 - weight) * weak_correct[i]
            for i, weight in enumerate(strong_weight)
        )
        accuracy, share = correct / rows, sum(strong_weight) / rows
        gap = strong_accuracy - weak_accuracy
        threshold_accuracy = curve_accuracy_at(curve, share)
        thresholds = sorted({tier_thresholds(r.task_kind, weak_ref, strong_ref)[rule] for r in routed})
        shown = "/".join(thresholds)
        print(
            f"  {rule:<12} mapping (strong tier {shown}): {100 * share:5.1f}% to the strong tier; "
            f"accuracy {accuracy:.4f} = {100 * accuracy / strong_accuracy:.1f}% of always-strong, "
            f"PGR {(accuracy - weak_accuracy) / gap:.3f}; threshold router on the classifier score at "
            f"that share: PGR {(threshold_accuracy - weak_accuracy) / gap:.3f}, random "
            f"{share:.3f}"
        )
        if rule == HEADLINE_RULE:
            headline = (
                f"  => at {100 * auto_cost / strongest_cost:.1f}% of the strongest model's cost, auto keeps "
                f"{100 * accuracy / strong_accuracy:.1f}% of its accuracy "
                f"(PGR {(accuracy - weak_accuracy) / gap:.3f}, {rule} mapping)"
            )
    print(headline)


def tier_thresholds(kind: TaskKind, weak_ref: CatalogModel, strong_ref: CatalogModel) -> dict[str, str]:
    weak_q, strong_q = weak_ref.quality.for_task(kind), strong_ref.quality.for_task(kind)
    return {
        "nearest": f">={(weak_q + strong_q) / 2:g}",
        "linear": f"{weak_q}..{strong_q}",
        "conservative": f">={strong_q}",
    }


def strong_tier_weight(r: Routed, rule: str, *, weak_ref: CatalogModel, strong_ref: CatalogModel) -> float:
    """How much of the strong column a routed model earns (0 = weak column, 1 = strong column)."""
    quality = r.model.quality.for_task(r.task_kind)
    weak_q, strong_q = weak_ref.quality.for_task(r.task_kind), strong_ref.quality.for_task(r.task_kind)
    assert strong_q > weak_q
    if rule == "nearest":
        return float(quality >= (weak_q + strong_q) / 2)
    if rule == "conservative":
        return float(quality >= strong_q)
    assert rule == "linear", rule
    return min(1.0, max(0.0, (quality - weak_q) / (strong_q - weak_q)))


def curve_accuracy_at(curve: list[CurvePoint], share: float) -> float:
    """Accuracy of the threshold router (classifier score) at a strong-call share, on its exact curve."""
    assert 0.0 <= share <= 1.0
    for left, right in itertools.pairwise(curve):
        if share <= right.strong_share:
            width = right.strong_share - left.strong_share
            fraction = 0.0 if width == 0 else (share - left.strong_share) / width
            return left.accuracy + fraction * (right.accuracy - left.accuracy)
    return curve[-1].accuracy


def quantiles(values: list[float], shares: tuple[float, ...]) -> list[float]:
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(share * len(ordered)))] for share in shares]


def print_difficulty(prompts: tuple[str, ...]) -> None:
    """Why `auto` picks what it picks: the classifier's difficulty and the quality that asks for."""
    model = load_classifier_model()
    profiles = [classify_text(prompt, model) for prompt in prompts]
    shares = (0.1, 0.5, 0.9, 0.99, 1.0)
    difficulty = quantiles([p.difficulty for p in profiles], shares)
    needed = quantiles([float(needed_quality(p.kind, p.difficulty)) for p in profiles], shares)
    labels = "p10/p50/p90/p99/max"
    print(
        f"classifier on these prompts: difficulty {labels} "
        + "/".join(f"{value:.2f}" for value in difficulty)
        + f"; quality needed (strategies.needed_quality) {labels} "
        + "/".join(f"{value:.0f}" for value in needed)
    )


def print_route_eval(results: dict[str, RouterEvaluation]) -> None:
    first = results["router"]
    print(
        f"\nroute-eval on the held-out rows ({first.row_count}; weak {WEAK_COLUMN} accuracy "
        f"{first.weak_accuracy:.4f}, strong {STRONG_COLUMN} {first.strong_accuracy:.4f}):"
    )
    print(f"  {'router':<12} {'APGR':>7} {'CPT(50%)':>9} {'CPT(80%)':>9}")
    for name in ("router", "random", "length"):
        result = results[name]
        label = "classifier" if name == "router" else name
        print(f"  {label:<12} {result.apgr:>7.4f} {100 * result.cpt50:>8.1f}% {100 * result.cpt80:>8.1f}%")
    router, random = results["router"], results["random"]
    print(
        f"  classifier vs random: APGR {router.apgr / random.apgr:.3f}x, CPT(80%) "
        f"{router.cpt80 / random.cpt80:.3f}x (lower CPT = fewer strong calls for the same quality)"
    )


async def run(output_tokens: int) -> None:
    started = time.perf_counter()
    print(machine_description())
    catalog = load_catalog()
    data = load_route_eval_data(HELDOUT_CSV, strong_model=STRONG_COLUMN, weak_model=WEAK_COLUMN)
    weak_ref, strong_ref = catalog.get(WEAK_REFERENCE_ID), catalog.get(STRONG_REFERENCE_ID)
    print(
        f"data {HELDOUT_CSV.name}: {len(data.prompts)} held-out rows; catalog {len(list(catalog))} models; "
        f"references: weak {weak_ref.id} (quality {weak_ref.quality.overall}), strong {strong_ref.id} "
        f"(quality {strong_ref.quality.overall}); strongest {strongest_model(catalog).id} "
        f"(quality {strongest_model(catalog).quality.overall})"
    )
    print(
        "assumptions: list prices; prompt tokens estimated by the router; a fixed reply length; "
        "fresh health; "
        "routed model's correctness mapped to the weak/strong column by catalog quality (see docstring)"
    )
    print_difficulty(data.prompts)
    for strategy in STRATEGIES:
        routing_started = time.perf_counter()
        routed = await route_all(data.prompts, catalog, strategy=strategy, output_tokens=output_tokens)
        print_workload(
            strategy,
            routed,
            catalog=catalog,
            weak_correct=data.weak_correct,
            strong_correct=data.strong_correct,
            output_tokens=output_tokens,
        )
        per_prompt_ms = (time.perf_counter() - routing_started) * 1000 / len(routed)
        print(f"  planning time {per_prompt_ms:.2f} ms per prompt (classify + plan over the catalog)")
    print_route_eval(evaluate_route_data(data))
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s; {load_average_line('at the end')}")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output-tokens", type=int, default=OUTPUT_TOKENS_DEFAULT, help="fixed reply size per prompt"
    )
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.output_tokens <= 100_000:
        parser.error("--output-tokens must be within 1..100000")
    return arguments


async def bounded_run(arguments: argparse.Namespace) -> None:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await run(arguments.output_tokens)


def main(argv: list[str] | None = None) -> int:
    if sys.flags.optimize:
        print("refusing to run with python -O: the proxy's assertions would be stripped", file=sys.stderr)
        return 2
    asyncio.run(bounded_run(parse_arguments(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
