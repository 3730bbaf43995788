"""The per-client token buckets that bound sign-in challenges, driven by an injected clock (no sleeps).

Method: a manual clock steps time; each bucket must allow its burst, refuse the next with a whole number of
seconds to wait, refill at its rate, never mint tokens when the clock steps back, and remember at most
`keys_max` clients.
"""

from __future__ import annotations

from proxy.accounts import TokenBuckets


class ManualClock:
    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def _buckets(clock: ManualClock, *, keys_max: int = 100) -> TokenBuckets:
    return TokenBuckets(capacity=3, refill_interval_s=10.0, keys_max=keys_max, clock_s=clock)


def test_burst_then_refusal_with_retry_after_then_refill() -> None:
    clock = ManualClock()
    buckets = _buckets(clock)
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert buckets.take("a") == 10
    clock.now_s += 4
    assert buckets.take("a") == 6
    clock.now_s += 6
    assert buckets.take("a") is None
    assert buckets.take("a") == 10
    assert buckets.take("b") is None  # Buckets are per client.


def test_refill_stops_at_capacity_and_a_clock_stepping_back_mints_nothing() -> None:
    clock = ManualClock()
    buckets = _buckets(clock)
    clock.now_s += 10_000
    assert [buckets.take("a") for _ in range(4)] == [None, None, None, 10]
    clock.now_s -= 500
    assert buckets.take("a") is not None


def test_remembered_clients_are_bounded() -> None:
    clock = ManualClock()
    buckets = _buckets(clock, keys_max=2)
    for client in ("a", "b", "c", "d"):
        buckets.take(client)
    assert len(buckets) == 2
