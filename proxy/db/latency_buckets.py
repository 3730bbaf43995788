"""The fixed log-scale buckets of the usage roll-ups' latency and time-to-first-token histograms.

Each hourly roll-up row keeps one count per bucket; percentiles over any set of rows come from summing those
counts (proxy/serving/analytics.py), never from the raw events. Bucket `i` holds values in
[`LATENCY_BUCKET_EDGES_MS[i - 1]`, `LATENCY_BUCKET_EDGES_MS[i]`), the first from 0 and the last without end.
The edges grow by √2 from 1 ms to about 12 minutes, rounded to whole ms: a percentile is known to within
its bucket, whose upper edge is ~41 % above its lower one (up to 50 % below 8 ms, from the rounding).
They are part of the stored data: changing them needs a migration that rebuilds the roll-ups.
Pure: no I/O, imports nothing of the proxy.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = [
    "LATENCY_BUCKETS",
    "LATENCY_BUCKET_EDGES_MS",
    "latency_bucket",
    "latency_bucket_bounds_ms",
    "latency_column",
    "ttft_column",
]

# round(√2 ** k) for k = 0..39: 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, … 524288, 741455 ms.
LATENCY_BUCKET_EDGES_MS: tuple[int, ...] = tuple(sorted({round(2 ** (k / 2)) for k in range(40)}))
LATENCY_BUCKETS = len(LATENCY_BUCKET_EDGES_MS) + 1


def latency_bucket(value_ms: int) -> int:
    """The bucket that counts `value_ms`."""
    assert value_ms >= 0
    bucket = bisect_right(LATENCY_BUCKET_EDGES_MS, value_ms)
    assert 0 <= bucket < LATENCY_BUCKETS
    return bucket


def latency_bucket_bounds_ms(bucket: int) -> tuple[int, int | None]:
    """[lower, upper) of `bucket` in ms; the last bucket has no upper bound (None)."""
    assert 0 <= bucket < LATENCY_BUCKETS
    lower = 0 if bucket == 0 else LATENCY_BUCKET_EDGES_MS[bucket - 1]
    upper = LATENCY_BUCKET_EDGES_MS[bucket] if bucket < len(LATENCY_BUCKET_EDGES_MS) else None
    return lower, upper


def latency_column(bucket: int) -> str:
    assert 0 <= bucket < LATENCY_BUCKETS
    return f"latency_b{bucket:02d}"


def ttft_column(bucket: int) -> str:
    assert 0 <= bucket < LATENCY_BUCKETS
    return f"ttft_b{bucket:02d}"
