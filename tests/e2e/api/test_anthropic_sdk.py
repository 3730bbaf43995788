"""The official `anthropic` package against MegaRouter's `POST /v1/messages` and `/v1/messages/count_tokens`.

Goal: a caller who knows only Anthropic's SDK can use a model behind the OpenAI-compatible adapter and one
behind the Anthropic adapter — messages, streams, a tool round trip, token counts — and is charged exactly
the catalog price of the usage it is shown, with every hold captured once; errors come back in Anthropic's
shape (the SDK's own exception types), except the x402 402, which stays an x402 document. Every failure
charges what was produced: nothing when the upstream fails before its first byte (an x402 payment then stays
as credit, with PAYMENT-RESPONSE on the error), the part sent when a stream is cut or the caller hangs up.

Method: the real app (router fixture) with the simulated providers upstream; AsyncAnthropic (no retries) on
a wallet-bound key that bought credit with x402. Each charge is recomputed from the catalog prices and the
usage the SDK returned, and compared with the response header, the usage log, the hold and the credit.
"""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import ANY

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from proxy.api.app_keys import CATALOG
from proxy.serving.payer import PAYMENT_KEPT_AS_CREDIT
from tests.e2e.api.support import (
    assert_charged_for_what_was_produced,
    assert_voided_and_payment_kept,
    credit_balance,
    funded_key,
    holds_of,
    post_paid_with_x402,
    read_until_events,
    resolved_hold,
    usage_event,
)
from tests.e2e.payments import decode_b64_json
from tests.fixtures.app import RunningRouter

CHAT_MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}
TOKENS_PER_MTOK = 1_000_000
WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MESSAGES: list[MessageParam] = [{"role": "user", "content": "Explain what a router does."}]


def anthropic_client(router: RunningRouter, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=str(router.client.make_url("")).rstrip("/"), api_key=key, max_retries=0, timeout=30.0
    )


def expected_cost_nano_usd(router: RunningRouter, model_id: str, usage: Any) -> int:
    """The catalog price of the Anthropic usage the caller was shown (input_tokens exclude cache tokens)."""
    model = router.app[CATALOG].get(model_id)
    numerator = (
        usage.input_tokens * model.input_price_nano_usd_per_mtok
        + (usage.cache_read_input_tokens or 0) * model.cached_input_price_nano_usd_per_mtok
        + (usage.cache_creation_input_tokens or 0) * model.cache_write_input_price_nano_usd_per_mtok
        + usage.output_tokens * model.output_price_nano_usd_per_mtok
    )
    cost_nano_usd: int = -(-numerator // TOKENS_PER_MTOK)
    return cost_nano_usd


async def assert_captured(router: RunningRouter, request_id: str, *, cost_nano_usd: int) -> None:
    """The usage log and the hold agree with the charge: captured exactly that, once."""
    event = await usage_event(router, request_id)
    assert event.outcome == "completed"
    assert event.cost_nano_usd == cost_nano_usd
    assert event.hold_id is not None
    holds = {hold.id: hold for payer in router.payers for hold in await holds_of(router, payer)}
    assert holds[event.hold_id].state == "captured"
    assert holds[event.hold_id].captured_amount == cost_nano_usd


@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_message_and_stream_are_served_and_charged_exactly(router: RunningRouter, kind: str) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    client = anthropic_client(router, key)
    before = await credit_balance(router, payer)
    raw = await client.messages.with_raw_response.create(
        model=model_id,
        system="You are terse.",
        messages=MESSAGES,
        max_tokens=60,
        # This SDK release no longer names sampling parameters; the wire format still carries them.
        extra_body={"temperature": 0.2, "top_k": 40, "stop_sequences": ["\n\n\n"]},
        metadata={"user_id": "sdk-test"},
    )
    message = await raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens <= 60
    assert raw.headers["X-MegaRouter-Model"] == model_id
    cost_nano_usd = expected_cost_nano_usd(router, model_id, message.usage)
    assert int(raw.headers["X-MegaRouter-Cost-Nano-USD"]) == cost_nano_usd
    await assert_captured(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)
    after_message = await credit_balance(router, payer)
    assert before.posted - after_message.posted == cost_nano_usd

    async with client.messages.stream(model=model_id, messages=MESSAGES, max_tokens=60) as stream:
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.response.headers["X-MegaRouter-Model"] == model_id
        request_id = stream.response.headers["X-Request-Id"]
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "".join(block.text for block in final.content if block.type == "text") != ""
    assert final.id.startswith("msg_")
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert 0 < final.usage.output_tokens <= 60
    stream_cost_nano_usd = expected_cost_nano_usd(router, model_id, final.usage)
    await assert_captured(router, request_id, cost_nano_usd=stream_cost_nano_usd)
    after_stream = await credit_balance(router, payer)
    assert after_message.posted - after_stream.posted == stream_cost_nano_usd
    assert after_stream.pending == 0, "no hold is left open"
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_tool_use_round_trip(router: RunningRouter, kind: str) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    client = anthropic_client(router, key)
    messages: list[MessageParam] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = await client.messages.create(
        model=model_id, messages=messages, tools=[WEATHER_TOOL], tool_choice={"type": "auto"}, max_tokens=100
    )
    assert first.stop_reason == "tool_use"
    calls = [block for block in first.content if block.type == "tool_use"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert isinstance(call.input, dict)
    assert set(call.input) == {"city"}
    assert call.id

    # The same first turn streamed: input_json_delta events reassemble into the same input.
    async with client.messages.stream(
        model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=100
    ) as stream:
        streamed = await stream.get_final_message()
    streamed_calls = [block for block in streamed.content if block.type == "tool_use"]
    assert [block.name for block in streamed_calls] == ["get_weather"]
    assert isinstance(streamed_calls[0].input, dict)
    assert set(streamed_calls[0].input) == {"city"}
    assert streamed.stop_reason == "tool_use"

    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": '{"temperature_c": 21}'}],
        },
    ]
    final = await client.messages.create(
        model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=100
    )
    assert final.stop_reason == "end_turn"
    assert [block.type for block in final.content] == ["text"]
    # The tool result went upstream: the prompt of the last turn is longer than the first's.
    assert final.usage.input_tokens > first.usage.input_tokens
    holds = await holds_of(router, payer)
    assert [hold.state for hold in holds] == ["captured"] * 3
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_count_tokens_is_free_and_needs_a_key(router: RunningRouter, kind: str) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    client = anthropic_client(router, key)
    before = await credit_balance(router, payer)
    short = await client.messages.count_tokens(model=model_id, messages=MESSAGES)
    longer = await client.messages.count_tokens(
        model=model_id, system="You are terse.", messages=MESSAGES, tools=[WEATHER_TOOL]
    )
    assert 0 < short.input_tokens < longer.input_tokens
    # The key works in `Authorization: Bearer` too (the SDK's auth_token).
    bearer_client = anthropic.AsyncAnthropic(
        base_url=str(router.client.make_url("")).rstrip("/"), auth_token=key, max_retries=0, timeout=30.0
    )
    assert (await bearer_client.messages.count_tokens(model=model_id, messages=MESSAGES)) == short
    await bearer_client.close()
    after = await credit_balance(router, payer)
    assert (after.posted, after.pending) == (before.posted, before.pending)
    assert await holds_of(router, payer) == []

    anonymous = await router.client.post(
        "/v1/messages/count_tokens", json={"model": model_id, "messages": MESSAGES}
    )
    assert anonymous.status == 401
    body = await anonymous.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_errors_have_anthropic_shape_and_the_402_stays_x402(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[6], amount_usd="1")
    client = anthropic_client(router, key)
    model_id = CHAT_MODELS["openai"]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.post(
            "/v1/messages", body={"model": model_id, "messages": MESSAGES}, cast_to=object
        )  # No max_tokens.
    assert bad.value.status_code == 400
    body: Any = bad.value.body
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": body["error"]["message"]},
    }
    assert "max_tokens" in body["error"]["message"]

    with pytest.raises(anthropic.NotFoundError) as unknown:
        await client.messages.create(model="nobody/no-model", messages=MESSAGES, max_tokens=10)
    assert unknown.value.status_code == 404
    assert unknown.value.body == {"type": "error", "error": {"type": "not_found_error", "message": ANY}}

    wrong = anthropic_client(router, "mr-not-a-key")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await wrong.messages.create(model=model_id, messages=MESSAGES, max_tokens=10)
    assert refused.value.status_code == 401
    assert refused.value.body == {"type": "error", "error": {"type": "authentication_error", "message": ANY}}

    unpaid = await router.client.post(
        "/v1/messages", json={"model": model_id, "messages": MESSAGES, "max_tokens": 10}
    )
    assert unpaid.status == 402
    assert "PAYMENT-REQUIRED" in unpaid.headers
    offer = await unpaid.json()
    assert offer["x402Version"] == 2
    assert offer["accepts"]
    await client.close()
    await wrong.close()


def _sse_events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.split("\n\n"):
        if frame.strip():
            name_line, data_line = frame.split("\n")
            events.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return events


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_cut_stream_ends_with_an_error_event_and_charges_what_was_produced(
    router: RunningRouter, kind: str
) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    router.simulator["primary"].set_fault(upstream_model, cut_stream_after_tokens=5)
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": "Tell me about routers and ledgers."}],
        "max_tokens": 200,
        "stream": True,
    }
    response = await router.client.post("/v1/messages", json=body, headers={"x-api-key": key})
    assert response.status == 200
    events = _sse_events(await response.text())
    names = [name for name, _ in events]
    # Translated streams open as the renderer writes them; passed-through ones as Anthropic sends them.
    assert names[0] == "message_start"
    assert sorted(names[1:3]) == ["content_block_start", "ping"]
    assert "message_stop" not in names, "a cut stream must never look complete"
    assert names[-1] == "error"
    assert events[-1][1]["type"] == "error"
    assert events[-1][1]["error"]["type"] in ("api_error", "overloaded_error", "timeout_error")

    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert event.outcome == "stream_cut"
    assert hold.state == "captured"
    assert event.output_tokens > 0
    assert hold.captured_amount == event.cost_nano_usd
    assert 0 < event.cost_nano_usd < hold.amount
    assert (await credit_balance(router, payer)).pending == 0

    # What the SDK's caller sees: the part produced, then an error.
    client = anthropic_client(router, key)
    received: list[str] = []

    async def read_all() -> None:
        async with client.messages.stream(model=model_id, messages=MESSAGES, max_tokens=200) as stream:
            async for text in stream.text_stream:
                received.append(text)

    with pytest.raises(anthropic.APIError):
        await read_all()
    assert received
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_upstream_failure_is_an_anthropic_error_and_charges_nothing(router: RunningRouter) -> None:
    model_id = CHAT_MODELS["anthropic"]
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    router.simulator["primary"].set_fault(upstream_model, error_count=50, error_status=529)
    client = anthropic_client(router, key)
    before = await credit_balance(router, payer)
    with pytest.raises(anthropic.APIStatusError) as failed:
        await client.messages.create(model=model_id, messages=MESSAGES, max_tokens=10)
    assert failed.value.status_code >= 500
    assert failed.value.body == {"type": "error", "error": {"type": ANY, "message": ANY}}
    body: Any = failed.value.body
    assert body["error"]["type"] in ("api_error", "overloaded_error")
    after = await credit_balance(router, payer)
    assert (after.posted, after.pending) == (before.posted, 0)
    assert [hold.state for hold in await holds_of(router, payer)] == ["voided"]
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
async def test_upstream_failure_keeps_an_x402_payment_as_credit_and_says_so(
    router: RunningRouter, stream: bool
) -> None:
    """No byte was produced: the hold is voided, and the settled payment stays whole as the payer's credit,
    with PAYMENT-RESPONSE on the Anthropic-shaped error so the agent knows it paid."""
    model_id = CHAT_MODELS["anthropic"]
    payer = router.payers[6]
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    router.simulator["primary"].set_fault(upstream_model, error_count=50, error_status=529)
    body = {"model": model_id, "messages": MESSAGES, "max_tokens": 10, "stream": stream}
    response, paid_nano_usd = await post_paid_with_x402(router, "/v1/messages", body, payer=payer)
    assert response.status >= 500, await response.text()
    error = await response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] in ("api_error", "overloaded_error")
    assert PAYMENT_KEPT_AS_CREDIT in error["error"]["message"]
    assert decode_b64_json(response.headers["PAYMENT-RESPONSE"])["success"] is True

    await assert_voided_and_payment_kept(
        router, response.headers["X-Request-Id"], payer, paid_nano_usd=paid_nano_usd
    )


def _text_of_complete_events(raw: str) -> str:
    """The text of every complete content_block_delta in `raw` (the last frame may be cut off)."""
    complete = raw[: raw.rfind("\n\n") + 2]
    return "".join(
        data["delta"].get("text", "") for name, data in _sse_events(complete) if name == "content_block_delta"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_client_disconnect_midstream_charges_what_was_produced(
    router: RunningRouter, kind: str
) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    # Slow enough that the caller hangs up long before the reply is complete.
    router.simulator["primary"].set_fault(upstream_model, tokens_per_s=40)
    body = {"model": model_id, "messages": MESSAGES, "max_tokens": 200, "stream": True}
    response = await router.client.post("/v1/messages", json=body, headers={"x-api-key": key})
    assert response.status == 200
    request_id = response.headers["X-Request-Id"]
    received = await read_until_events(response, event="content_block_delta", count=2)
    response.close()

    await assert_charged_for_what_was_produced(
        router, request_id, payer, seen_text=_text_of_complete_events(received), output_tokens_max=200
    )
