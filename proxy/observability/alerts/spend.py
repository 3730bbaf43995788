"""The spend-anomaly statistic: is this hour's spend far above the subject's own recent hours?

Robust to the spikes it looks for: the baseline is the median of the trailing hours (hours without spend
count as 0) and the spread is their median absolute deviation (MAD), so one earlier spike moves neither.
An hour departs from the baseline when its spend exceeds

    median + max(k × MAD, min_excess_nano_usd)

The floor keeps tiny spenders (whose MAD is a few nano-USD) and perfectly steady ones (MAD 0) quiet until
the excess is worth a person's attention. Exact arithmetic on integers and Fractions: no float holds money.
Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from pydantic import BaseModel, ConfigDict

__all__ = ["SpendBaseline", "median", "spend_baseline"]


class SpendBaseline(BaseModel):
    model_config = ConfigDict(frozen=True)

    median_nano_usd: Fraction
    mad_nano_usd: Fraction
    # Spend strictly above this departs from the baseline (rounded up to a whole nano-USD).
    threshold_nano_usd: int

    def departs(self, spend_nano_usd: int) -> bool:
        return spend_nano_usd > self.threshold_nano_usd


def median(values: Sequence[int | Fraction]) -> Fraction:
    assert values, "the median of nothing"
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return Fraction(ordered[middle])
    return (Fraction(ordered[middle - 1]) + Fraction(ordered[middle])) / 2


def spend_baseline(
    history_nano_usd: Sequence[int], *, mad_multiplier: Decimal, min_excess_nano_usd: int
) -> SpendBaseline:
    """The baseline of the trailing hours' spend, oldest first (the order does not matter)."""
    assert history_nano_usd, "a baseline needs at least one hour"
    assert all(spend >= 0 for spend in history_nano_usd)
    assert mad_multiplier > 0
    assert min_excess_nano_usd >= 1
    center = median(history_nano_usd)
    spread = median([abs(spend - center) for spend in history_nano_usd])
    excess = max(Fraction(mad_multiplier) * spread, Fraction(min_excess_nano_usd))
    threshold = math.ceil(center + excess)
    assert threshold >= center + min_excess_nano_usd
    return SpendBaseline(median_nano_usd=center, mad_nano_usd=spread, threshold_nano_usd=threshold)
