"""Fault injection state of one simulated provider: what to do to requests for which model.

A `FaultSpec` per model name (or `*` for every model without its own). Randomness (error_rate) comes
from one seeded generator per simulator, so a test run is repeatable; `error_count` is the exact,
non-random way to make the next N requests fail. State lives in the app, never at module level.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ANY_MODEL", "FaultBook", "FaultDecision", "FaultSpec"]

ANY_MODEL = "*"
HANG_S_MAX = 600.0  # Even a "hang" ends: when the simulator stops, or after this long.


class FaultSpec(BaseModel):
    """Behaviour of one model on one simulated provider. All delays in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(default=0, ge=0, le=600_000)  # Before the response status line.
    time_to_first_token_ms: int = Field(default=0, ge=0, le=600_000)  # Then before the first token.
    tokens_per_s: float | None = Field(default=None, gt=0)  # Then this pace (None: as fast as possible).
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # Share of requests answered with error_status.
    error_count: int = Field(default=0, ge=0)  # The next N requests fail, whatever error_rate says.
    error_status: Literal[400, 401, 403, 404, 413, 429, 500, 502, 503, 529] = 500
    retry_after_s: int | None = Field(default=None, ge=0)  # Sent as Retry-After with the injected error.
    hang: bool = False  # Accept the request and never answer (until stop or HANG_S_MAX).
    cut_stream_after_tokens: int | None = Field(default=None, ge=0)  # Drop the connection after N tokens.
    stream_error_after_tokens: int | None = Field(
        default=None, ge=0
    )  # Send the format's error event instead.
    # Report this many output tokens more than were generated (beyond max_tokens too): an upstream whose
    # usage exceeds what the router quoted.
    output_tokens_over_reported: int = Field(default=0, ge=0, le=10_000_000)


class FaultDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: FaultSpec
    fail: bool


class FaultBook:
    """Per-model fault specs, the seeded generator, and request counters for tests to assert on."""

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = seed
        self._random = random.Random(seed)
        self._specs: dict[str, FaultSpec] = {}
        self._remaining_errors: dict[str, int] = {}
        self.requests: Counter[str] = Counter()
        self.injected_errors: Counter[str] = Counter()

    def set(self, model: str, spec: FaultSpec) -> None:
        assert model
        self._specs[model] = spec
        self._remaining_errors[model] = spec.error_count

    def clear(self, model: str) -> None:
        self._specs.pop(model, None)
        self._remaining_errors.pop(model, None)

    def reset(self) -> None:
        """No faults, zero counters, generator reseeded: as freshly started."""
        self._specs.clear()
        self._remaining_errors.clear()
        self.requests.clear()
        self.injected_errors.clear()
        self._random = random.Random(self._seed)

    def specs(self) -> dict[str, FaultSpec]:
        return dict(self._specs)

    def decide(self, model: str) -> FaultDecision:
        """Counts the request and decides whether it fails (consumes one error_count if so)."""
        self.requests[model] += 1
        key = model if model in self._specs else ANY_MODEL
        spec = self._specs.get(key, FaultSpec())
        fail = False
        if self._remaining_errors.get(key, 0) > 0:
            self._remaining_errors[key] -= 1
            fail = True
        elif spec.error_rate > 0:
            fail = self._random.random() < spec.error_rate
        if fail:
            self.injected_errors[model] += 1
        return FaultDecision(spec=spec, fail=fail)

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            model: {"requests": self.requests[model], "injected_errors": self.injected_errors[model]}
            for model in sorted(self.requests)
        }
