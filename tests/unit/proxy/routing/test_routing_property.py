"""Goal: `auto` sends trivial everyday requests to cheap models and demanding ones to strong models.

Method: every held-out row of the project's labelled everyday requests (tests/data/routing/
dev_requests.jsonl; the shipped difficulty model never saw them) as a one-message request with
`max_tokens` 300 through the classifier and `plan_route` on the shipped catalog, fresh health, every
provider configured. Under each strategy that weighs price: at least 90% of the trivial picks are priced
(output price per MTok) below the median of the demanding picks, and the demanding picks' median output
price is at least 5x the trivial picks'. Latency and availability break fresh-health ties by quality, so
for them only the demanding side is checked: strong models.
"""

from __future__ import annotations

import functools
import statistics

import pytest

from proxy.catalog import Catalog, CatalogModel, load_catalog
from proxy.routing.classifier import classify_request
from proxy.routing.requirements import RequestNeeds, RouteRequest, Strategy
from proxy.routing.strategies import plan_route
from tests.fixtures.routing_data import heldout_dev_requests


@functools.cache
def shipped_catalog() -> Catalog:
    return load_catalog()


def first_pick(prompt: str, strategy: Strategy) -> CatalogModel:
    catalog = shipped_catalog()
    task = classify_request([{"role": "user", "content": prompt}])
    return plan_route(
        catalog,
        route=RouteRequest(strategy=strategy),
        needs=RequestNeeds(prompt_tokens=task.prompt_tokens_estimate, output_tokens_max=300),
        health={},
        providers_available=set(catalog.providers()),
        task=task,
    ).candidates[0]


def price(prompt: str, strategy: Strategy) -> int:
    return first_pick(prompt, strategy).output_price_nano_usd_per_mtok


@pytest.mark.parametrize("strategy", ["balanced", "cost"])
def test_trivial_requests_go_cheap_and_demanding_ones_go_strong(strategy: Strategy) -> None:
    rows = heldout_dev_requests()
    trivial = [price(row.prompt, strategy) for row in rows if row.label == "trivial"]
    demanding = [price(row.prompt, strategy) for row in rows if row.label == "demanding"]
    assert len(trivial) >= 30
    assert len(demanding) >= 30
    demanding_median = statistics.median(demanding)
    assert sum(price < demanding_median for price in trivial) >= 0.9 * len(trivial)
    assert demanding_median >= 5 * statistics.median(trivial)


@pytest.mark.parametrize("strategy", ["balanced", "cost", "latency", "availability"])
def test_demanding_requests_get_rated_strong_models(strategy: Strategy) -> None:
    picks = [first_pick(row.prompt, strategy) for row in heldout_dev_requests() if row.label == "demanding"]
    strong = [pick for pick in picks if pick.quality.rated and (pick.quality.overall or 0) >= 85]
    assert len(strong) >= 0.8 * len(picks)


ISSUE_TRIVIAL = (
    "hi",
    "Thanks, that's all.",
    "Translate 'good morning' to French.",
    "Give me a synonym for 'happy'.",
    "List three primary colours.",
)
ISSUE_DEMANDING = (
    "Prove that there are infinitely many primes of the form 4k+3, with full rigor.",
    "Show that every planar graph is 5-colourable",
    "Analyse the worst-case running time of a DPLL solver on 3-SAT and explain why clause learning helps.",
    "Prove that the cycle-following strategy wins the 100 prisoners problem with probability above 30%.",
)


@pytest.mark.parametrize("strategy", ["balanced", "cost"])
def test_the_prompts_of_the_issue_report_are_no_longer_inverted(strategy: Strategy) -> None:
    """Issue 13's report: these went to the dearest model and to a $0.10 one respectively."""
    trivial = [price(prompt, strategy) for prompt in ISSUE_TRIVIAL]
    demanding = [price(prompt, strategy) for prompt in ISSUE_DEMANDING]
    assert max(trivial) < min(demanding)
    assert statistics.median(demanding) >= 5 * statistics.median(trivial)
