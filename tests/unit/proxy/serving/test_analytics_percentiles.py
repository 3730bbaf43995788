"""Percentiles from merged roll-up histograms agree with the exact percentile of the raw values, to within
one bucket; the other pure parts of the analytics query (range widening, USD text) are exact.

Method: Hypothesis draws latency samples (split over several "roll-up rows" whose histograms are summed, as
the query does) and quantiles; the exact nearest-rank percentile is computed from the sorted values.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from proxy.db.latency_buckets import LATENCY_BUCKETS, latency_bucket, latency_bucket_bounds_ms
from proxy.serving.analytics import AnalyticsQuery, histogram_percentile_ms, nano_usd_text

LATENCIES_MS = st.integers(min_value=0, max_value=2_000_000)
QUANTILES = st.sampled_from([0.5, 0.95, 0.99]) | st.floats(min_value=0.001, max_value=1.0)


def _histogram(values: list[int]) -> list[int]:
    counts = [0] * LATENCY_BUCKETS
    for value in values:
        counts[latency_bucket(value)] += 1
    return counts


def _exact_percentile(values: list[int], quantile: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


@given(rows=st.lists(st.lists(LATENCIES_MS, min_size=1, max_size=40), min_size=1, max_size=6), q=QUANTILES)
def test_merged_histograms_give_the_exact_percentile_to_within_its_bucket(
    rows: list[list[int]], q: float
) -> None:
    merged = [sum(counts) for counts in zip(*(_histogram(row) for row in rows), strict=True)]
    values = [value for row in rows for value in row]
    answer = histogram_percentile_ms(merged, q, min_ms=min(values), max_ms=max(values))
    exact = _exact_percentile(values, q)
    assert latency_bucket(answer) == latency_bucket(exact)
    # Never below the true percentile, never above any value seen.
    assert exact <= answer <= max(values)


@given(value=st.integers(min_value=0, max_value=10**9))
def test_every_value_lies_within_its_bucket(value: int) -> None:
    lower, upper = latency_bucket_bounds_ms(latency_bucket(value))
    assert lower <= value
    assert upper is None or value < upper


@given(value=LATENCIES_MS, q=QUANTILES)
def test_a_single_value_is_its_own_percentile(value: int, q: float) -> None:
    assert histogram_percentile_ms(_histogram([value]), q, min_ms=value, max_ms=value) == value


@given(amount=st.integers(min_value=0, max_value=2**63 - 1))
def test_usd_text_is_the_exact_decimal_of_nano_usd(amount: int) -> None:
    text = nano_usd_text(amount)
    assert Decimal(text) * 10**9 == amount
    assert len(text.split(".")[1]) == 9


def test_ranges_widen_to_whole_buckets() -> None:
    query = AnalyticsQuery(start_unix_s=3_601, end_unix_s=7_201, bucket="hour")
    assert query.range_unix_s == (3_600, 10_800)
    assert query.buckets == 2
    day = AnalyticsQuery(start_unix_s=86_400 + 5, end_unix_s=2 * 86_400, bucket="day")
    assert day.range_unix_s == (86_400, 2 * 86_400)


@pytest.mark.parametrize(
    "fields",
    [
        {"start_unix_s": 10, "end_unix_s": 10},
        {"start_unix_s": 0, "end_unix_s": 31 * 86_400 + 1},
        {"start_unix_s": 0, "end_unix_s": 10, "group_by": ("model", "model")},
        {"start_unix_s": 0, "end_unix_s": 10, "group_by": ("model", "key", "wallet", "org")},
        {"start_unix_s": 0, "end_unix_s": 10, "group_by": ("colour",)},
    ],
)
def test_out_of_bounds_queries_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AnalyticsQuery.model_validate(fields)
