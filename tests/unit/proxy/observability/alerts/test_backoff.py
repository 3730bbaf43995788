"""Delivery back-off: exponential up to a ceiling, half fixed and half random, never below half of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.observability.alerts import backoff_s


def test_doubles_until_the_ceiling() -> None:
    waits = [backoff_s(n, base_s=5.0, max_s=60.0, unit_random=1.0) for n in range(1, 7)]
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert backoff_s(3, base_s=5.0, max_s=60.0, unit_random=0.0) == 10.0


@given(st.integers(1, 500), st.floats(0.001, 100.0), st.floats(100.0, 10_000.0), st.floats(0.0, 1.0))
def test_jitter_stays_between_half_and_whole_ceiling(
    attempts: int, base: float, ceiling: float, r: float
) -> None:
    wait = backoff_s(attempts, base_s=base, max_s=ceiling, unit_random=r)
    full = min(ceiling, base * 2.0 ** min(attempts - 1, 60))
    assert full / 2 <= wait <= full
