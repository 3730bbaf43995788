#!/usr/bin/env python3
"""What `model: "auto"` costs on a held-back mixed workload, against always-strongest and each flagship.

Workload (never trained or tuned on): the held-out rows of the project's everyday requests
(tests/data/routing/dev_requests.jsonl, split of scripts/train_difficulty.py: trivial, medium and
demanding, seven domains) plus the first MMLU_ROWS held-out MMLU knowledge questions
(tests/data/routing/mmlu_heldout.csv, ordered by the sha256 of the prompt, so the sample is fixed and
unbiased by file order).

Each prompt is one user message with `max_tokens` MAX_TOKENS, routed as the proxy routes `auto`: the
shipped classifier, then `plan_route` over the shipped catalog with fresh health and every provider
configured; the first candidate is the model that serves it. Cost: the router's prompt-token estimate
plus REPLY_TOKENS at the catalog's list prices, rounded up per request to a nano-USD.

Quality (only what the data can support; stated per row kind):
- trivial everyday row: 1 for any rated model (a greeting or a one-word translation is within every
  rated model's reach), 0 for an unrated one (no figure to vouch for it);
- medium or demanding everyday row: the model's cited quality for the row's task kind divided by the strongest
  model's (capped at 1): a proportional credit from the public figures;
- MMLU row: RouteLLM's recorded correctness, the conservative way: the strong column (GPT-4-1106) when
  the model's cited overall quality is at least GPT-4-1106's Arena figure mapped the same way
  (STRONG_REFERENCE_QUALITY), else the weak column (Mixtral-8x7B).
Quality kept = total quality of the routed picks / total quality of always-strongest.

Baselines: always the strongest rated chat model (highest overall), and always each provider's flagship
(its highest-rated model), on the same rows. Goal (issue 13): >= 70% cheaper than always-strongest at
>= 95% of its quality.

Usage: PYTHONPATH=. .venv/bin/python scripts/bench/routing_cost.py [--mmlu-rows N]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from proxy.catalog import Catalog, CatalogModel, load_catalog
from proxy.money import TOKENS_PER_MTOK, div_ceil
from proxy.routing.classifier import TaskProfile, classify_request, load_classifier_model
from proxy.routing.requirements import RequestNeeds, RouteRequest, Strategy
from proxy.routing.strategies import plan_route

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "routing"
DEV_JSONL = DATA_DIR / "dev_requests.jsonl"
MMLU_HELDOUT_CSV = DATA_DIR / "mmlu_heldout.csv"
HELDOUT_BUCKET_END = 25  # scripts/train_difficulty.py
MMLU_ROWS_DEFAULT = 200
MAX_TOKENS = 300
REPLY_TOKENS = 300
WEAK_COLUMN = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_COLUMN = "gpt-4-1106-preview"
# GPT-4-1106-preview's Arena Elo 1251 (openlm.ai snapshot 2024-09-05) mapped as the catalog maps Elo.
STRONG_REFERENCE_QUALITY = round((1251 - 1000) / 5.5)
STRATEGIES: tuple[Strategy, ...] = ("balanced", "cost", "latency", "availability")
GOAL_CHEAPER = 0.70
GOAL_QUALITY = 0.95


@dataclass(frozen=True, slots=True)
class Row:
    kind: str  # "trivial", "medium", "demanding" or "mmlu"
    prompt: str
    weak_correct: bool = False
    strong_correct: bool = False


def bucket(prompt: str) -> int:
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) % 100


def load_workload(mmlu_rows: int) -> list[Row]:
    rows: list[Row] = []
    with DEV_JSONL.open(encoding="utf-8", newline="") as handle:
        for record in (json.loads(line) for line in handle if line.strip()):
            if bucket(record["prompt"]) < HELDOUT_BUCKET_END:
                rows.append(Row(record["label"], record["prompt"]))
    with MMLU_HELDOUT_CSV.open(encoding="utf-8", newline="") as handle:
        mmlu = sorted(
            csv.DictReader(handle), key=lambda r: hashlib.sha256(r["prompt"].encode("utf-8")).hexdigest()
        )
    for record in mmlu[:mmlu_rows]:
        rows.append(
            Row(
                "mmlu",
                record["prompt"],
                weak_correct=record[WEAK_COLUMN] == "True",
                strong_correct=record[STRONG_COLUMN] == "True",
            )
        )
    return rows


def request_cost(model: CatalogModel, profile: TaskProfile) -> int:
    total = (
        profile.prompt_tokens_estimate * model.input_price_nano_usd_per_mtok
        + REPLY_TOKENS * model.output_price_nano_usd_per_mtok
    )
    return div_ceil(total, TOKENS_PER_MTOK)


def row_quality(row: Row, model: CatalogModel, profile: TaskProfile, strongest: CatalogModel) -> float:
    quality = model.quality
    if not quality.rated:
        return 0.0
    if row.kind == "trivial":
        return 1.0
    if row.kind in ("medium", "demanding"):
        kind = (
            profile.kind
            if profile.kind in ("chat", "summarization", "extraction", "code", "math", "reasoning")
            else "chat"
        )
        score = quality.for_task(kind)  # type: ignore[arg-type]
        best = strongest.quality.for_task(kind)  # type: ignore[arg-type]
        assert score is not None
        assert best
        return min(1.0, score / best)
    assert quality.overall is not None
    column = row.strong_correct if quality.overall >= STRONG_REFERENCE_QUALITY else row.weak_correct
    return 1.0 if column else 0.0


def strongest_model(catalog: Catalog) -> CatalogModel:
    rated = [m for m in catalog if m.quality.rated and not m.capabilities.embeddings]
    return max(rated, key=lambda m: (m.quality.overall or 0, -m.output_price_nano_usd_per_mtok, m.id))


def flagships(catalog: Catalog) -> list[CatalogModel]:
    best: dict[str, CatalogModel] = {}
    for model in catalog:
        if not model.quality.rated or model.capabilities.embeddings:
            continue
        current = best.get(model.provider)
        key = (model.quality.overall or 0, -model.output_price_nano_usd_per_mtok)
        if current is None or key > (current.quality.overall or 0, -current.output_price_nano_usd_per_mtok):
            best[model.provider] = model
    return sorted(best.values(), key=lambda m: -(m.quality.overall or 0))


@dataclass(frozen=True, slots=True)
class Outcome:
    cost_nano_usd: int
    quality: float
    picks: Counter[str]


def evaluate(
    picks: list[CatalogModel], rows: list[Row], profiles: list[TaskProfile], strongest: CatalogModel
) -> Outcome:
    cost = sum(request_cost(m, p) for m, p in zip(picks, profiles, strict=True))
    quality = sum(row_quality(r, m, p, strongest) for r, m, p in zip(rows, picks, profiles, strict=True))
    return Outcome(cost, quality, Counter(m.id for m in picks))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mmlu-rows", type=int, default=MMLU_ROWS_DEFAULT)
    arguments = parser.parse_args()
    started = time.perf_counter()
    catalog = load_catalog()
    classifier = load_classifier_model()
    rows = load_workload(arguments.mmlu_rows)
    counts = Counter(row.kind for row in rows)
    profiles = [classify_request([{"role": "user", "content": row.prompt}], classifier) for row in rows]
    strongest = strongest_model(catalog)
    rated = sum(1 for m in catalog if m.quality.rated)
    print(
        f"workload: {len(rows)} held-back prompts ({counts['trivial']} trivial, {counts['medium']} medium, "
        f"{counts['demanding']} demanding everyday requests, {counts['mmlu']} MMLU questions); catalog "
        f"{len(catalog)} models, {rated} rated"
    )
    print(
        f"always-strongest: {strongest.id} (quality {strongest.quality.overall}); max_tokens {MAX_TOKENS}, "
        f"reply {REPLY_TOKENS} tokens, list prices, fresh health"
    )
    for kind in ("trivial", "medium", "demanding", "mmlu"):
        values = [p.difficulty for r, p in zip(rows, profiles, strict=True) if r.kind == kind]
        print(f"  difficulty P(demanding) on {kind:<9}: median {statistics.median(values):.2f}")
    baseline = evaluate([strongest] * len(rows), rows, profiles, strongest)
    print(f"\n{'router / baseline':<42} {'cost USD':>10} {'cheaper':>8} {'quality':>8}  top picks")

    def line(name: str, outcome: Outcome) -> None:
        cheaper = 1 - outcome.cost_nano_usd / baseline.cost_nano_usd
        kept = outcome.quality / baseline.quality
        top = ", ".join(f"{model_id} {count}" for model_id, count in outcome.picks.most_common(3))
        print(f"{name:<42} {outcome.cost_nano_usd / 1e9:>10.4f} {cheaper:>7.1%} {kept:>8.1%}  {top}")

    line(f"always {strongest.id}", baseline)
    for flagship in flagships(catalog):
        if flagship.id != strongest.id:
            line(f"always {flagship.id}", evaluate([flagship] * len(rows), rows, profiles, strongest))
    goal_met: dict[str, bool] = {}
    for strategy in STRATEGIES:
        picks = [
            plan_route(
                catalog,
                route=RouteRequest(strategy=strategy),
                needs=RequestNeeds(
                    prompt_tokens=profile.prompt_tokens_estimate, output_tokens_max=MAX_TOKENS
                ),
                health={},
                providers_available=set(catalog.providers()),
                task=profile,
            ).candidates[0]
            for profile in profiles
        ]
        outcome = evaluate(picks, rows, profiles, strongest)
        line(f"auto, strategy {strategy}", outcome)
        goal_met[strategy] = (
            1 - outcome.cost_nano_usd / baseline.cost_nano_usd >= GOAL_CHEAPER
            and outcome.quality / baseline.quality >= GOAL_QUALITY
        )
    print(
        f"\ngoal (>= {GOAL_CHEAPER:.0%} cheaper at >= {GOAL_QUALITY:.0%} quality): "
        + ", ".join(f"{s} {'met' if met else 'NOT met'}" for s, met in goal_met.items())
    )
    print(f"ran in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
