"""The balanced strategy's scale over the pool — the cheapest expected cost and the slowest latency — read
in one pass equals the straightforward min and max over every deployment.

Method: Hypothesis draws a sub-pool of the real catalog, a request size and health records (some with
latencies, some without) and compares with the definitions.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.catalog import load_catalog
from proxy.routing.health import DeploymentHealth
from proxy.routing.requirements import RequestNeeds
from proxy.routing.strategies import (
    _cheapest_expected_cost,
    _latency_s,
    _slowest_latency_s,
    expected_cost_nano_usd,
)

CATALOG = tuple(load_catalog())
latencies = st.none() | st.floats(min_value=0.001, max_value=60)


def _health(deployment_id: str, latency_s: float | None, ttft_s: float | None) -> DeploymentHealth:
    return DeploymentHealth(
        deployment_id=deployment_id,
        breaker="closed",
        open_remaining_s=0.0,
        probe_in_flight=False,
        latency_ewma_s=latency_s,
        ttft_ewma_s=ttft_s,
        error_rate=0.0,
        requests_in_window=1,
        failures_in_window=0,
        consecutive_failures=0,
        last_failure_kind=None,
        successes_total=1,
        failures_total=0,
    )


@settings(max_examples=200, deadline=None)
@given(
    indexes=st.lists(st.integers(0, len(CATALOG) - 1), max_size=60, unique=True),
    prompt_tokens=st.integers(0, 500_000),
    output_max=st.none() | st.integers(1, 10_000),
    streaming=st.booleans(),
    recorded=st.dictionaries(st.integers(0, len(CATALOG) - 1), st.tuples(latencies, latencies), max_size=20),
)
def test_the_scale_read_in_one_pass_is_the_min_and_max(
    indexes: list[int],
    prompt_tokens: int,
    output_max: int | None,
    streaming: bool,
    recorded: dict[int, tuple[float | None, float | None]],
) -> None:
    pool = [CATALOG[i] for i in indexes]
    needs = RequestNeeds(prompt_tokens=prompt_tokens, output_tokens_max=output_max, streaming=streaming)
    health = {CATALOG[i].id: _health(CATALOG[i].id, *latency) for i, latency in recorded.items()}
    assert _cheapest_expected_cost(pool, needs) == min(
        (expected_cost_nano_usd(model, needs) for model in pool), default=0
    )
    assert _slowest_latency_s(pool, health, streaming=streaming) == max(
        (_latency_s(health.get(model.id), streaming=streaming) for model in pool), default=0.0
    )
