"""What every simulated API format shares: per-app state, fault handling before an answer, pacing.

Must not import the adapters (proxy.providers.*) except the pure token estimates, so that the
simulator stays an independent witness of the wire formats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from proxy.devnet.simulator.faults import HANG_S_MAX, FaultBook, FaultSpec
from proxy.json_bounds import loads_bounded_json

__all__ = [
    "SIMULATOR_STATE",
    "ErrorRenderer",
    "Pacer",
    "PromptCache",
    "SimulatorState",
    "before_answer",
    "cut_connection",
    "json_error",
    "pause",
    "read_json_object",
]

PROMPT_CACHE_ENTRIES_MAX = 10_000
LAST_BODIES_MAX = 256
PROMPT_CACHE_TOKENS_MIN = 1024  # OpenAI and Gemini cache prompt prefixes from this size on.
PROMPT_CACHE_BLOCK_TOKENS = 128  # … in steps of this many tokens.


class PromptCache:
    """Remembers prompt prefixes so that a repeated prefix reports cached input tokens, as real ones do."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def cached_tokens(self, prefix_key: str, prefix_tokens: int) -> int:
        """Tokens served from cache for this prefix (0 the first time); remembers it for next time."""
        if prefix_tokens < PROMPT_CACHE_TOKENS_MIN:
            return 0
        if prefix_key in self._seen:
            return prefix_tokens // PROMPT_CACHE_BLOCK_TOKENS * PROMPT_CACHE_BLOCK_TOKENS
        if len(self._seen) >= PROMPT_CACHE_ENTRIES_MAX:
            self._seen.clear()
        self._seen.add(prefix_key)
        return 0

    def seen(self, key: str) -> bool:
        """Records `key`, answering whether it was there already (Anthropic's explicit cache breakpoints)."""
        if key in self._seen:
            return True
        if len(self._seen) >= PROMPT_CACHE_ENTRIES_MAX:
            self._seen.clear()
        self._seen.add(key)
        return False

    def clear(self) -> None:
        self._seen.clear()


@dataclass
class SimulatorState:
    name: str
    faults: FaultBook
    api_key: str | None = None  # None: any non-empty key is accepted.
    models: tuple[str, ...] = ()
    context_window_tokens: int = 128_000
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    # The last request body per model, as received: tests check what reached the upstream.
    last_bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record_body(self, model: str, body: dict[str, Any]) -> None:
        if model not in self.last_bodies and len(self.last_bodies) >= LAST_BODIES_MAX:
            self.last_bodies.clear()
        self.last_bodies[model] = body

    def key_accepted(self, key: str | None) -> bool:
        if not key:
            return False
        return self.api_key is None or key == self.api_key


SIMULATOR_STATE = web.AppKey("SIMULATOR_STATE", SimulatorState)

ErrorRenderer = Callable[[int, str], web.Response]


def json_error(status: int, body: dict[str, Any], *, retry_after_s: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return web.json_response(body, status=status, headers=headers)


async def read_json_object(request: web.Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        # Bounded like MegaRouter's own edge: the simulator's replies recurse through tool schemas.
        body = loads_bounded_json(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def pause(state: SimulatorState, seconds: float) -> None:
    """Sleeps, but wakes at once when the simulator stops (so a stop never waits for a fault)."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.stopping.wait(), timeout=seconds)


INJECTED_MESSAGES = {
    429: "Rate limit reached (simulated)",
    500: "The server had an error while processing your request (simulated)",
    502: "Bad gateway (simulated)",
    503: "The service is temporarily unavailable (simulated)",
    529: "Overloaded (simulated)",
}


async def before_answer(
    state: SimulatorState, model: str, render_error: Callable[[int, str, int | None], web.Response]
) -> tuple[FaultSpec, web.Response | None]:
    """Applies latency, hang and injected errors. Returns the spec, and the error response if any."""
    decision = state.faults.decide(model)
    spec = decision.spec
    await pause(state, spec.latency_ms / 1000)
    if spec.hang:
        await pause(state, HANG_S_MAX)
        return spec, render_error(503, "simulator stopped while hanging", None)
    if decision.fail:
        message = INJECTED_MESSAGES.get(spec.error_status, f"Injected error {spec.error_status} (simulated)")
        return spec, render_error(spec.error_status, message, spec.retry_after_s)
    return spec, None


class Pacer:
    """Paces tokens: time to first token, then tokens_per_s. Non-streamed answers take the same time."""

    def __init__(self, state: SimulatorState, spec: FaultSpec) -> None:
        self._state = state
        self._spec = spec
        self._started = False

    async def next_token(self) -> None:
        if not self._started:
            self._started = True
            await pause(self._state, self._spec.time_to_first_token_ms / 1000)
        elif self._spec.tokens_per_s is not None:
            await pause(self._state, 1 / self._spec.tokens_per_s)

    async def whole(self, tokens: int) -> None:
        per_token_s = 1 / self._spec.tokens_per_s if self._spec.tokens_per_s else 0.0
        await pause(self._state, self._spec.time_to_first_token_ms / 1000 + max(tokens - 1, 0) * per_token_s)


def cut_connection(request: web.Request) -> None:
    """Drops the TCP connection mid-response, as a crashing upstream or a broken proxy would."""
    transport = request.transport
    if transport is not None:
        transport.abort()
