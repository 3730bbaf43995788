"""The spend-anomaly statistic (median + max(k·MAD, floor)) against its definition, with Hypothesis.

Method: properties that must hold for every history: the threshold equals a reference computed with the
standard library's median on Fractions; it never sits below median + floor; it ignores the order of the
hours; shifting every hour by c shifts it by c; one spike in the history moves it no more than to a
neighbouring order statistic (robustness); a perfectly steady spender alerts exactly past the floor.
"""

from __future__ import annotations

import math
import statistics
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from proxy.observability.alerts.spend import median, spend_baseline

SPEND = st.integers(min_value=0, max_value=10**13)
HISTORY = st.lists(SPEND, min_size=3, max_size=72)
MULTIPLIER = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(20), places=2)
FLOOR = st.integers(min_value=1, max_value=10**10)


@given(HISTORY, MULTIPLIER, FLOOR)
def test_threshold_is_median_plus_the_larger_of_scaled_mad_and_floor(
    history: list[int], k: Decimal, floor: int
) -> None:
    center = statistics.median([Fraction(x) for x in history])
    mad = statistics.median([abs(Fraction(x) - center) for x in history])
    expected = math.ceil(center + max(Fraction(k) * mad, Fraction(floor)))
    baseline = spend_baseline(history, mad_multiplier=k, min_excess_nano_usd=floor)
    assert baseline.threshold_nano_usd == expected
    assert baseline.threshold_nano_usd >= center + floor
    assert baseline.departs(expected + 1)
    assert not baseline.departs(expected)


@given(st.permutations(list(range(0, 10**9, 10**7))), MULTIPLIER, FLOOR)
def test_the_order_of_the_hours_does_not_matter(history: list[int], k: Decimal, floor: int) -> None:
    shuffled = spend_baseline(history, mad_multiplier=k, min_excess_nano_usd=floor)
    ordered = spend_baseline(sorted(history), mad_multiplier=k, min_excess_nano_usd=floor)
    assert shuffled == ordered


@given(HISTORY, MULTIPLIER, FLOOR, st.integers(min_value=0, max_value=10**12))
def test_shifting_every_hour_shifts_the_threshold(history: list[int], k: Decimal, floor: int, c: int) -> None:
    base = spend_baseline(history, mad_multiplier=k, min_excess_nano_usd=floor)
    shifted = spend_baseline([x + c for x in history], mad_multiplier=k, min_excess_nano_usd=floor)
    assert shifted.threshold_nano_usd == base.threshold_nano_usd + c
    assert shifted.mad_nano_usd == base.mad_nano_usd


@given(st.lists(SPEND, min_size=5, max_size=49).filter(lambda h: len(h) % 2 == 1), st.integers(0, 10**15))
def test_one_spike_in_the_history_barely_moves_the_median(history: list[int], spike: int) -> None:
    ordered = sorted(history)
    middle = len(ordered) // 2
    spiked = [*history[1:], spike]
    # Replacing one value moves the median at most to a neighbouring order statistic of the original.
    assert ordered[middle - 1] <= median(spiked) <= ordered[middle + 1]


@given(SPEND, st.integers(min_value=3, max_value=168), FLOOR)
def test_a_steady_spender_alerts_exactly_past_the_floor(level: int, hours: int, floor: int) -> None:
    baseline = spend_baseline([level] * hours, mad_multiplier=Decimal(6), min_excess_nano_usd=floor)
    assert baseline.threshold_nano_usd == level + floor
    assert not baseline.departs(level + floor)
    assert baseline.departs(level + floor + 1)


def test_a_quiet_history_alerts_on_a_burst_and_not_on_the_usual() -> None:
    history = [1_000_000, 1_200_000, 900_000, 1_100_000, 0, 1_000_000, 1_050_000]
    baseline = spend_baseline(history, mad_multiplier=Decimal(6), min_excess_nano_usd=500_000)
    assert baseline.median_nano_usd == 1_000_000
    assert baseline.mad_nano_usd == 100_000
    assert baseline.threshold_nano_usd == 1_600_000
    assert not baseline.departs(1_300_000)
    assert baseline.departs(25_000_000)
