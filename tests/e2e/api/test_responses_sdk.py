"""The official `openai` package's Responses API (`client.responses`) through MegaRouter's POST /v1/responses.

Goal: a caller who speaks only the Responses API reaches an Anthropic and a Gemini model through the same
paid pipeline as chat — plain, streamed, a function-call round trip, structured output — and is charged
exactly the catalog price of the usage it is shown, with the hold captured at that amount. What MegaRouter
does not support (stored conversations, unknown fields) is a 400 naming the field, before any money moves.
Every failure charges what was produced: nothing when the upstream fails before its first byte (an x402
payment then stays as credit, with PAYMENT-RESPONSE on the error), the part sent when a stream is cut or
the caller hangs up.

Method: the real app (router fixture) with the simulated providers upstream and their fault knobs; the SDK
(AsyncOpenAI, no retries) with a wallet-bound key whose wallet bought credit with x402, or a raw x402
payment. Each charge is recomputed from the catalog prices and the usage in the Response (or the usage
event), and compared with the header, the usage log and the hold. SQLite throughout; the paths where the
database decides the charge (a capture, the partial capture of a cut stream, a void after an x402
payment) on PostgreSQL too.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import FunctionToolParam, ResponseInputParam, ResponseUsage
from pydantic import BaseModel

from proxy.api.app_keys import CATALOG
from proxy.serving.payer import PAYMENT_KEPT_AS_CREDIT
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import (
    assert_charged_for_what_was_produced,
    assert_voided_and_payment_kept,
    credit_balance,
    funded_key,
    holds_of,
    openai_client,
    post_paid_with_x402,
    read_until_events,
    resolved_hold,
)
from tests.e2e.payments import decode_b64_json
from tests.fixtures.app import RunningRouter

# Catalog models with tools and JSON mode, behind the two adapters that translate the most.
MODELS = {"anthropic": "anthropic/claude-haiku-4-5", "gemini": "google/gemini-2.5-flash-lite"}
TOKENS_PER_MTOK = 1_000_000
WEATHER_TOOL: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CUT_AFTER_TOKENS = 5
STREAM_LIFECYCLE_FIRST = ["response.created", "response.in_progress"]


class City(BaseModel):
    name: str
    country: str
    population: int


def expected_cost_nano_usd(router: RunningRouter, model_id: str, usage: ResponseUsage) -> int:
    """The catalog price of the usage the caller was shown, rounded up to the next nano-USD."""
    model = router.app[CATALOG].get(model_id)
    cached = usage.input_tokens_details.cached_tokens
    numerator = (
        (usage.input_tokens - cached) * model.input_price_nano_usd_per_mtok
        + cached * model.cached_input_price_nano_usd_per_mtok
        + usage.output_tokens * model.output_price_nano_usd_per_mtok
    )
    return -(-numerator // TOKENS_PER_MTOK)


async def assert_captured(router: RunningRouter, request_id: str, *, cost_nano_usd: int) -> None:
    """The usage log and the ledger agree with the charge: the hold captured exactly that, once."""
    hold, event = await resolved_hold(router, request_id)
    assert event.outcome == "completed"
    assert event.cost_nano_usd == cost_nano_usd
    assert hold.state == "captured"
    assert hold.captured_amount == cost_nano_usd
    assert hold.amount == event.quote_nano_usd >= cost_nano_usd


@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_plain_response_is_served_and_charged_exactly(router: RunningRouter, kind: str) -> None:
    model_id = MODELS[kind]
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        raw = await client.responses.with_raw_response.create(
            model=model_id,
            instructions="You are terse.",
            input="Explain what a router does.",
            max_output_tokens=60,
            temperature=0.2,
            metadata={"case": "plain"},
        )
    response = raw.parse()
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.model == model_id
    assert response.status in ("completed", "incomplete")
    assert response.output_text
    assert response.output[0].type == "message"
    assert response.instructions == "You are terse."
    assert response.metadata == {"case": "plain"}
    assert response.temperature == 0.2
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert 0 < usage.output_tokens <= 60
    cost_nano_usd = expected_cost_nano_usd(router, model_id, usage)
    assert int(raw.headers["X-MegaRouter-Cost-Nano-USD"]) == cost_nano_usd
    assert raw.headers["X-MegaRouter-Model"] == model_id
    await assert_captured(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_streamed_response_events_end_completed_and_are_charged(
    router: RunningRouter, kind: str
) -> None:
    model_id = MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    async with openai_client(router, key) as client:
        raw = await client.responses.with_raw_response.create(
            model=model_id, input="Tell me about routers.", max_output_tokens=200, stream=True
        )
        assert raw.headers["Content-Type"].startswith("text/event-stream")
        request_id = raw.headers["X-Request-Id"]
        events = [event async for event in raw.parse()]
    kinds = [event.type for event in events]
    assert kinds[:2] == STREAM_LIFECYCLE_FIRST
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == deltas != ""
    assert final.response.usage is not None
    cost_nano_usd = expected_cost_nano_usd(router, model_id, final.response.usage)
    await assert_captured(router, request_id, cost_nano_usd=cost_nano_usd)

    # The SDK's own stream helper assembles the same events into a final response.
    async with (
        openai_client(router, key) as client,
        client.responses.stream(model=model_id, input="Tell me about routers.") as stream,
    ):
        helper_kinds = [event.type async for event in stream]
        assembled = await stream.get_final_response()
    assert helper_kinds[-1] == "response.completed"
    assert assembled.output_text
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_function_call_round_trip(router: RunningRouter, kind: str) -> None:
    model_id = MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    conversation: ResponseInputParam = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with openai_client(router, key) as client:
        first = await client.responses.create(
            model=model_id, input=conversation, tools=[WEATHER_TOOL], tool_choice="required"
        )
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1
        call = calls[0]
        assert call.name == "get_weather"
        assert set(json.loads(call.arguments)) == {"city"}
        assert call.call_id

        # The same first turn streamed: argument deltas reassemble into the call.
        stream = await client.responses.create(
            model=model_id, input=conversation, tools=[WEATHER_TOOL], tool_choice="required", stream=True
        )
        streamed: list[Any] = [event async for event in stream]
        arguments = "".join(e.delta for e in streamed if e.type == "response.function_call_arguments.delta")
        done = [e for e in streamed if e.type == "response.function_call_arguments.done"]
        assert [e.arguments for e in done] == [arguments]
        assert set(json.loads(arguments)) == {"city"}
        assert streamed[-1].type == "response.completed"

        # Sent back as the SDK hands it out: the output items, then the function's result.
        follow_up: list[Any] = [*conversation, *(item.model_dump(exclude_none=True) for item in first.output)]
        follow_up.append(
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature_c": 21}'}
        )
        final = await client.responses.create(model=model_id, input=follow_up, tools=[WEATHER_TOOL])
    assert final.status == "completed"
    assert final.output_text
    assert not [item for item in final.output if item.type == "function_call"]
    assert first.usage is not None
    assert final.usage is not None
    # The call and its result went upstream: the last turn's prompt is longer than the first's.
    assert final.usage.input_tokens > first.usage.input_tokens
    holds = await holds_of(router, payer)
    assert [hold.state for hold in holds] == ["captured"] * 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_json_schema_text_format_parses(router: RunningRouter, kind: str) -> None:
    model_id = MODELS[kind]
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        parsed = await client.responses.parse(
            model=model_id, input="The largest city of France.", text_format=City, max_output_tokens=2_000
        )
        assert isinstance(parsed.output_parsed, City)
        assert parsed.text is not None
        assert parsed.text.format is not None
        assert parsed.text.format.type == "json_schema"

        raw = await client.responses.with_raw_response.create(
            model=model_id,
            input="The largest city of France, as JSON.",
            text={"format": {"type": "json_object"}},
            max_output_tokens=2_000,
        )
    response = raw.parse()
    assert isinstance(json.loads(response.output_text), dict)
    assert response.usage is not None
    cost_nano_usd = expected_cost_nano_usd(router, model_id, response.usage)
    await assert_captured(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"background": True}, "background"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"tools": [{"type": "web_search"}]}, "tools.0"),
    ],
)
async def test_unsupported_fields_are_400s_naming_them(
    router: RunningRouter, extra: dict[str, Any], param: str
) -> None:
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    async with openai_client(router, key) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model=MODELS["anthropic"], input="Hello", extra_body=extra)
    error = refused.value
    assert error.status_code == 400
    assert isinstance(error.body, dict)
    assert error.body["param"] is not None
    assert error.body["param"].startswith(param)
    assert param.split(".")[0] in error.body["message"]
    assert await holds_of(router, payer) == [], "refused before any money is held"


@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_a_cut_stream_ends_with_an_error_event_and_charges_what_was_produced(
    router: RunningRouter, kind: str
) -> None:
    model_id = MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    router.simulator["primary"].set_fault(upstream_model, cut_stream_after_tokens=CUT_AFTER_TOKENS)
    body = {"model": model_id, "input": "Tell me about routers and ledgers.", "stream": True}
    response = await router.client.post("/v1/responses", json=body, headers=bearer(key))
    assert response.status == 200
    frames = [frame for frame in (await response.text()).split("\n\n") if frame]
    kinds = [frame.split("\n")[0].removeprefix("event: ") for frame in frames]
    assert "response.output_text.delta" in kinds, "the caller received the first part"
    assert kinds[-1] == "error", "a cut stream must never look complete"
    assert "response.completed" not in kinds

    hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
    assert event.outcome == "stream_cut"
    assert hold.state == "captured"
    assert hold.captured_amount is not None
    assert 0 < hold.captured_amount < hold.amount
    assert event.cost_nano_usd == hold.captured_amount
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_upstream_failure_is_an_openai_error_and_charges_nothing(router: RunningRouter) -> None:
    model_id = MODELS["gemini"]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    router.simulator["primary"].set_fault(upstream_model, error_count=50, error_status=503)
    before = await credit_balance(router, payer)
    async with openai_client(router, key) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            await client.responses.create(model=model_id, input="Hello", max_output_tokens=10)
    assert failed.value.status_code >= 500
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["code"]
    assert failed.value.body["message"]
    after = await credit_balance(router, payer)
    assert (after.posted, after.pending) == (before.posted, 0)
    [hold] = await holds_of(router, payer)
    assert hold.state == "voided"


@pytest.mark.parametrize("stream", [False, True], ids=["response", "stream"])
async def test_upstream_failure_keeps_an_x402_payment_as_credit_and_says_so(
    router: RunningRouter, stream: bool
) -> None:
    """No byte was produced: the hold is voided, and the settled payment stays whole as the payer's credit,
    with PAYMENT-RESPONSE on the error so the agent knows it paid."""
    model_id = MODELS["anthropic"]
    payer = router.payers[7]
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    router.simulator["primary"].set_fault(upstream_model, error_count=50, error_status=529)
    body = {"model": model_id, "input": "Hello", "max_output_tokens": 10, "stream": stream}
    response, paid_nano_usd = await post_paid_with_x402(router, "/v1/responses", body, payer=payer)
    assert response.status >= 500, await response.text()
    error = (await response.json())["error"]
    assert error["code"]
    assert PAYMENT_KEPT_AS_CREDIT in error["message"]
    assert decode_b64_json(response.headers["PAYMENT-RESPONSE"])["success"] is True

    await assert_voided_and_payment_kept(
        router, response.headers["X-Request-Id"], payer, paid_nano_usd=paid_nano_usd
    )


def _text_of_complete_deltas(raw: str) -> str:
    """The text of every complete response.output_text.delta in `raw` (the last frame may be cut off)."""
    frames = raw[: raw.rfind("\n\n")].split("\n\n")
    texts = []
    for frame in frames:
        name_line, data_line = frame.split("\n")
        if name_line == "event: response.output_text.delta":
            texts.append(json.loads(data_line.removeprefix("data: "))["delta"])
    return "".join(texts)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_client_disconnect_midstream_charges_what_was_produced(
    router: RunningRouter, kind: str
) -> None:
    model_id = MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    # Slow enough that the caller hangs up long before the reply is complete.
    router.simulator["primary"].set_fault(upstream_model, tokens_per_s=40)
    body = {
        "model": model_id,
        "input": "Tell me about routers and ledgers.",
        "max_output_tokens": 200,
        "stream": True,
    }
    response = await router.client.post("/v1/responses", json=body, headers=bearer(key))
    assert response.status == 200
    request_id = response.headers["X-Request-Id"]
    received = await read_until_events(response, event="response.output_text.delta", count=2)
    response.close()

    await assert_charged_for_what_was_produced(
        router, request_id, payer, seen_text=_text_of_complete_deltas(received), output_tokens_max=200
    )
