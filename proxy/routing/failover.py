"""When to try the next candidate after an upstream failure: a pure policy, no I/O.

The handler owns the loop (call, record the outcome in the health tracker, decide, move on); this
module only answers "may the next candidate be tried?". Rules, in order:
1. Never once a byte has reached the client: a stream that broke after its first byte ends with an
   explicit error event instead (a second model's reply cannot be spliced onto the first's).
2. Never on a caller error: the request itself is wrong (HTTP 4xx other than 429 — `bad_request`,
   `payload_too_large`, `context_length`, `unsupported_request`), and every deployment would refuse it.
3. Never beyond the attempt limit, nor with less than `deadline_min_s` of the overall deadline left.
4. Otherwise fail over on the deployment-side kinds: 429 (`rate_limited`), `overloaded`, 5xx
   (`server_error`), `timeout`, `connection`, a garbled 2xx (`invalid_response`), a stream cut before
   its first byte reached the client (`stream_interrupted`), and upstream `auth` / `permission` /
   `not_found` — those are our credentials or our catalog entry being wrong at that provider, which the
   caller can neither cause nor fix, and another deployment can serve. Unknown kinds do not fail over.
"""

from __future__ import annotations

import math

from proxy.providers.errors import FAILOVER_KINDS

__all__ = [
    "CALLER_ERROR_KINDS_FAILOVER",
    "FAILOVER_ERROR_KINDS",
    "PROVIDER_CONFIG_ERROR_KINDS",
    "should_fail_over",
]

# The adapters' own list (deployment-side failures) plus our configuration at that provider being wrong.
PROVIDER_CONFIG_ERROR_KINDS: frozenset[str] = frozenset({"auth", "permission", "not_found"})
FAILOVER_ERROR_KINDS: frozenset[str] = FAILOVER_KINDS | PROVIDER_CONFIG_ERROR_KINDS
CALLER_ERROR_KINDS_FAILOVER: frozenset[str] = frozenset(
    {"bad_request", "payload_too_large", "context_length", "unsupported_request"}
)
assert not FAILOVER_ERROR_KINDS & CALLER_ERROR_KINDS_FAILOVER

# Below this much time left, a new upstream call cannot produce a useful answer before the deadline.
DEADLINE_MIN_S = 0.5


def should_fail_over(
    error_kind: str,
    *,
    bytes_sent_to_client: bool,
    attempt: int,
    attempts_max: int,
    deadline_left_s: float,
    deadline_min_s: float = DEADLINE_MIN_S,
) -> bool:
    """May the next candidate be tried after attempt number `attempt` (1-based) failed with `error_kind`?"""
    assert attempt >= 1, attempt
    assert attempts_max >= 1, attempts_max
    assert not math.isnan(deadline_left_s)
    if bytes_sent_to_client:
        return False
    if error_kind not in FAILOVER_ERROR_KINDS:
        return False
    if attempt >= attempts_max:
        return False
    return deadline_left_s >= deadline_min_s
