"""Streams that do not end well: the upstream cut or failing mid-way, the caller hanging up, and an upstream
that fails before its first byte.

Goal: a stream broken after its first byte ends with an explicit error event (never `[DONE]`), and the
ledger captures exactly the charge for what was produced — by the usage the provider reported, or, when
it never reported any, by the estimate from the text sent (marked as estimated); the hold is resolved on
every path. A failure before the first byte is failed over invisibly: the caller gets a complete stream,
and the headers name the deployment that served and every attempt.

Method: the real app with the simulated providers; faults injected per upstream model through
`SimulatorServer.set_fault`; the SSE read raw with aiohttp (to see the exact last event) and with the
official SDK (to see what a caller's code sees). The expected charge is recomputed from the usage event's
tokens and the catalog prices, and the estimate from the text the caller actually received.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from proxy.api.app_keys import CATALOG
from proxy.devnet.simulator import FaultSpec
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.tokens import estimate_prompt_tokens, estimate_text_tokens
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import credit_balance, funded_key, openai_client, resolved_hold
from tests.fixtures.app import RunningRouter

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "google/gemini-2.5-flash-lite",
}
TOKENS_PER_MTOK = 1_000_000
CUT_AFTER_TOKENS = 5
# A prompt whose reply (seeded by the conversation) is long enough to be cut after a few tokens.
PROMPT = "Tell me about routers and ledgers."


def _body(model_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model_id,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 200,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }


def _upstream_name(router: RunningRouter, model_id: str) -> str:
    return router.app[CATALOG].get(model_id).upstream_model


def _price(router: RunningRouter, model_id: str, *, input_tokens: int, output_tokens: int) -> int:
    model = router.app[CATALOG].get(model_id)
    numerator = (
        input_tokens * model.input_price_nano_usd_per_mtok
        + output_tokens * model.output_price_nano_usd_per_mtok
    )
    return -(-numerator // TOKENS_PER_MTOK)


def _events(raw: str) -> list[str]:
    return [block.removeprefix("data: ") for block in raw.split("\n\n") if block.startswith("data: ")]


def _text(events: list[str]) -> str:
    parts = []
    for event in events:
        document = json.loads(event)
        for choice in document.get("choices", []):
            parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


@pytest.mark.parametrize("fault", ["cut_stream_after_tokens", "stream_error_after_tokens"])
@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_stream_broken_midway_ends_with_error_event_and_charges_what_was_produced(
    router: RunningRouter, kind: str, fault: str
) -> None:
    model_id = MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    spec = FaultSpec.model_validate({fault: CUT_AFTER_TOKENS})
    router.simulator["primary"].set_fault(_upstream_name(router, model_id), spec)
    body = _body(model_id)
    response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.status == 200
    assert response.headers["X-MegaRouter-Model"] == model_id
    events = _events(await response.text())
    assert events, "the caller received the first part"
    assert "[DONE]" not in events, "a broken stream must never look complete"
    last = json.loads(events[-1])
    assert set(last) == {"error"}, last
    assert last["error"]["message"]
    text = _text(events[:-1])
    assert text

    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert event.outcome == "stream_cut"
    assert hold.state == "captured"
    if event.usage_estimated:
        # No usage from the provider: the estimate of exactly what was sent to the caller.
        assert event.input_tokens == estimate_prompt_tokens(ChatCompletionRequest.model_validate(body))
        assert event.output_tokens == estimate_text_tokens(text)
    else:
        assert 0 < event.output_tokens <= CUT_AFTER_TOKENS + 1
    expected = _price(router, model_id, input_tokens=event.input_tokens, output_tokens=event.output_tokens)
    assert event.cost_nano_usd == expected
    assert hold.captured_amount == expected
    assert 0 < expected < hold.amount
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sdk_caller_sees_a_cut_stream_as_an_error(router: RunningRouter) -> None:
    model_id = MODELS["openai"]
    key = await funded_key(router, router.payers[7], amount_usd="1")
    router.simulator["primary"].set_fault(_upstream_name(router, model_id), cut_stream_after_tokens=3)
    async with openai_client(router, key) as client:
        stream = await client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": PROMPT}], max_tokens=200, stream=True
        )
        received: list[Any] = []

        async def read_all() -> None:
            async for chunk in stream:
                received.append(chunk)

        with pytest.raises(openai.APIError):
            await read_all()
    assert received, "the part produced before the cut arrived"


@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_client_disconnect_midstream_resolves_the_hold_with_a_charge_for_what_was_produced(
    router: RunningRouter, kind: str
) -> None:
    model_id = MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    # Slow enough that the caller can hang up long before the reply is complete.
    router.simulator["primary"].set_fault(_upstream_name(router, model_id), tokens_per_s=40)
    body = _body(model_id)
    response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.status == 200
    request_id = response.headers["X-Request-Id"]
    received = b""
    async with asyncio.timeout(10):
        while received.count(b"\n\n") < 3:
            received += await response.content.readany()
    response.close()

    hold, event = await resolved_hold(router, request_id)
    assert event.outcome == "client_disconnected"
    assert hold.state == "captured"
    assert event.usage_estimated, "the provider never reported usage for a stream closed early"
    assert event.input_tokens == estimate_prompt_tokens(ChatCompletionRequest.model_validate(body))
    received_text = _text(_events(received.decode()))
    # At least what the caller saw was produced, and less than a full reply (the upstream was closed).
    assert event.output_tokens >= estimate_text_tokens(received_text) > 0
    assert event.output_tokens < 200
    expected = _price(router, model_id, input_tokens=event.input_tokens, output_tokens=event.output_tokens)
    assert event.cost_nano_usd == expected
    assert hold.captured_amount == expected
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("fault", [{"error_count": 1, "error_status": 503}, {"cut_stream_after_tokens": 0}])
async def test_stream_failing_before_first_byte_fails_over_invisibly(
    router: RunningRouter, fault: dict[str, Any]
) -> None:
    # Llama 3.3 70B is served by Groq and by Together: Groq fails before its first byte.
    model_id = "groq/llama-3.3-70b-versatile"
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    router.simulator["primary"].set_fault(_upstream_name(router, model_id), **fault)
    response = await router.client.post("/v1/chat/completions", json=_body(model_id), headers=bearer(key))
    assert response.status == 200
    served = response.headers["X-MegaRouter-Model"]
    assert served != model_id
    assert served.startswith("together/")
    assert response.headers["X-MegaRouter-Provider"] == "together"
    attempts = response.headers["X-MegaRouter-Attempts"].split(", ")
    assert len(attempts) == 2
    assert attempts[0].startswith(f"{model_id}=")
    assert attempts[0] != f"{model_id}=ok"
    assert attempts[1] == f"{served}=ok"
    events = _events(await response.text())
    assert events[-1] == "[DONE]"
    assert all("error" not in json.loads(e) for e in events[:-1])
    usage = json.loads(events[-2])["usage"]

    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert event.outcome == "completed"
    assert event.model_id == served
    assert [a.outcome == "ok" for a in event.attempts] == [False, True]
    expected = _price(
        router, served, input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
    )
    assert hold.captured_amount == event.cost_nano_usd == expected
    assert (await credit_balance(router, payer)).pending == 0
