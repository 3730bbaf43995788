"""Per-client token buckets in process memory (used for sign-in challenges), with an injectable clock.

One instance belongs to one app (an AppKey), so tests can build as many as they like and nothing lives at
module level. The number of remembered clients is bounded: beyond `keys_max` the least recently seen are
forgotten, which at worst hands a forgotten client a full bucket again; the caller's own global bounds
(the challenge table's cap) still hold.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """Token buckets kept as the generic cell rate algorithm: per key, the time its bucket is full again.

    That is one float per key, and only sums and differences of the clock's readings, so whole-second
    settings give whole-second answers (no drift from fractional tokens).
    """

    def __init__(
        self,
        *,
        capacity: int,
        refill_interval_s: float,
        keys_max: int,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        assert capacity >= 1
        assert refill_interval_s > 0
        assert keys_max >= 1
        self._refill_interval_s = refill_interval_s
        # How far ahead of now a bucket's "full again" time may be while a token is still left.
        self._burst_window_s = (capacity - 1) * refill_interval_s
        self._keys_max = keys_max
        self._clock_s = clock_s
        self._full_at_s: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._full_at_s)

    def take(self, key: str) -> int | None:
        """Spends one token of `key`'s bucket: None when there was one, else whole seconds until there is."""
        now_s = self._clock_s()
        # A clock that steps back only makes the wait longer: it never mints tokens.
        full_at_s = max(self._full_at_s.pop(key, now_s), now_s)
        self._full_at_s[key] = full_at_s  # Most recently seen last, so the first ones are the idlest.
        while len(self._full_at_s) > self._keys_max:
            self._full_at_s.popitem(last=False)
        wait_s = full_at_s - now_s - self._burst_window_s
        if wait_s <= 0:
            self._full_at_s[key] = full_at_s + self._refill_interval_s
            return None
        retry_after_s = math.ceil(wait_s)
        assert retry_after_s >= 1
        return retry_after_s
