"""A stream never outlives its hold: its total duration and every write to the caller are bounded, and
whatever ends it, what was produced is charged exactly once, with a usage event.

Goal: issue 8 item 3: a stream that outlived `hold_timeout_s` let the sweeper expire its hold; the
capture then failed and the stream was served free, with no usage event. Method: the real app with
injected small bounds (`stream_duration_s_max`, `stream_write_timeout_s`); a simulated upstream paced far
slower than the duration bound (its `tokens_per_s` knob), and a caller that stops reading (its writes
made to wait forever). Assertions are on the outcome, the charge, the usage event and the hold state —
never on elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from eth_account.signers.local import LocalAccount

from proxy.api.app_keys import CATALOG
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.tokens import estimate_prompt_tokens
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import credit_balance, funded_key, resolved_hold
from tests.fixtures.app import RouterWith, RunningRouter

MODEL_ID = "openai/gpt-4o-mini"
STREAM_DURATION_S_MAX = 0.5
STREAM_WRITE_TIMEOUT_S = 0.2
# Two tokens a second for up to 200 tokens: about 100 s of reply, far beyond the duration bound.
SLOW_TOKENS_PER_S = 2.0
READ_WAIT_S_MAX = 20.0


def _body() -> dict[str, Any]:
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Tell me about routers and ledgers."}],
        "max_tokens": 200,
        "stream": True,
    }


def _events(raw: str) -> list[str]:
    return [block.removeprefix("data: ") for block in raw.split("\n\n") if block.startswith("data: ")]


@pytest.fixture
async def bounded_router(router_with: RouterWith) -> AsyncIterator[RunningRouter]:
    async with router_with(
        stream_duration_s_max=STREAM_DURATION_S_MAX, stream_write_timeout_s=STREAM_WRITE_TIMEOUT_S
    ) as running:
        yield running


async def _assert_charged_once_for_what_was_produced(
    router: RunningRouter, payer: LocalAccount, request_id: str, *, outcome: str
) -> None:
    hold, event = await resolved_hold(router, request_id)
    assert event.outcome == outcome
    assert hold.state == "captured"
    assert event.usage_estimated, "the provider never reported usage for a stream ended early"
    assert event.input_tokens == estimate_prompt_tokens(ChatCompletionRequest.model_validate(_body()))
    assert 0 < event.output_tokens < 200
    assert hold.captured_amount == event.cost_nano_usd
    assert 0 < event.cost_nano_usd < hold.amount
    assert (await credit_balance(router, payer)).pending == 0


async def test_a_stream_past_its_duration_bound_ends_with_an_error_and_is_charged(
    bounded_router: RunningRouter,
) -> None:
    router = bounded_router
    payer = router.payers[8]
    key = await funded_key(router, payer, amount_usd="1")
    upstream = router.app[CATALOG].get(MODEL_ID).upstream_model
    router.simulator["primary"].set_fault(upstream, tokens_per_s=SLOW_TOKENS_PER_S)
    response = await router.client.post("/v1/chat/completions", json=_body(), headers=bearer(key))
    assert response.status == 200
    async with asyncio.timeout(READ_WAIT_S_MAX):
        events = _events(await response.text())
    assert "[DONE]" not in events, "a stream ended by its bound must never look complete"
    last = json.loads(events[-1])
    assert last["error"]["code"] == "stream_duration_exceeded"
    await _assert_charged_once_for_what_was_produced(
        router, payer, response.headers["X-Request-Id"], outcome="stream_duration_exceeded"
    )


async def test_a_caller_that_stops_reading_is_let_go_and_charged(
    bounded_router: RunningRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = bounded_router
    payer = router.payers[8]
    key = await funded_key(router, payer, amount_usd="1")
    write = web.StreamResponse.write
    writes: dict[int, int] = {}

    async def stalls_after_the_first_event(self: web.StreamResponse, data: bytes) -> None:
        # A caller whose socket buffer is full: every write of the router's stream (not the in-process
        # simulator's, which carries no routing headers) after the first waits forever.
        if "X-MegaRouter-Model" in self.headers:
            writes[id(self)] = writes.get(id(self), 0) + 1
            if writes[id(self)] > 1:
                await asyncio.Event().wait()
        await write(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", stalls_after_the_first_event)
    response = await router.client.post("/v1/chat/completions", json=_body(), headers=bearer(key))
    assert response.status == 200
    # The connection stays open (a caller that hung up would be a disconnect): only the write bound ends it.
    await _assert_charged_once_for_what_was_produced(
        router, payer, response.headers["X-Request-Id"], outcome="client_write_timeout"
    )
    response.close()


class RelayBug(Exception):
    """Stands in for a bug in the relay, raised after the whole reply was produced."""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_relay_that_fails_unexpectedly_still_charges_what_was_produced_once(
    router: RunningRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    payer = router.payers[8]
    key = await funded_key(router, payer, amount_usd="1")

    def failing_usage_chunk(*_: object) -> dict[str, Any]:
        raise RelayBug

    monkeypatch.setattr("proxy.serving.stream_relay._usage_chunk", failing_usage_chunk)
    body = {**_body(), "stream_options": {"include_usage": True}}
    response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.status == 200
    with contextlib.suppress(aiohttp.ClientPayloadError):
        async with asyncio.timeout(READ_WAIT_S_MAX):
            await response.read()
    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert event.outcome == "relay_failed"
    assert not event.usage_estimated, "the provider reported its usage before the relay failed"
    assert hold.state == "captured"
    assert hold.captured_amount == event.cost_nano_usd
    assert 0 < event.cost_nano_usd < hold.amount
    assert (await credit_balance(router, payer)).pending == 0
