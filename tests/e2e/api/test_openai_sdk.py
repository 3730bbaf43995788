"""The official `openai` package against MegaRouter, for a model behind each adapter kind.

Goal: a caller who knows only OpenAI's SDK can use any catalog model through MegaRouter — completions,
streams, tool calls, JSON mode, embeddings, the model list — and is charged exactly the catalog price of
the usage it is shown, with every hold resolved. Bad requests fail with the SDK's own exception types
before any money is held or any upstream is called.

Method: the real app on SQLite and PostgreSQL (router fixture) with the simulated providers upstream; the
SDK (AsyncOpenAI, no retries) uses a wallet-bound API key whose wallet bought credit with x402. Each
request's charge is recomputed here from the catalog prices and the usage the SDK returned, and compared
with the response header, the usage log and the ledger hold.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from openai.types.chat.completion_create_params import ResponseFormat

from proxy.api.app_keys import CATALOG
from tests.e2e.api.support import credit_balance, funded_key, holds_of, openai_client, usage_event
from tests.fixtures.app import RunningRouter

# One chat model behind each adapter, each with tools and JSON mode in the catalog.
CHAT_MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "google/gemini-2.5-flash-lite",
}
EMBEDDING_MODELS = ("openai/text-embedding-3-small", "mistral/mistral-embed")
TOKENS_PER_MTOK = 1_000_000
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def expected_cost_nano_usd(router: RunningRouter, model_id: str, usage: Any) -> int:
    """The catalog price of the usage an SDK caller was shown, rounded up to the next nano-USD."""
    model = router.app[CATALOG].get(model_id)
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    numerator = (
        (usage.prompt_tokens - (cached or 0)) * model.input_price_nano_usd_per_mtok
        + (cached or 0) * model.cached_input_price_nano_usd_per_mtok
        + usage.completion_tokens * model.output_price_nano_usd_per_mtok
    )
    cost_nano_usd: int = -(-numerator // TOKENS_PER_MTOK)
    return cost_nano_usd


async def assert_charged(router: RunningRouter, request_id: str, *, cost_nano_usd: int) -> None:
    """The usage log and the ledger agree with the charge: the hold captured exactly that, once."""
    event = await usage_event(router, request_id)
    assert event.outcome == "completed"
    assert event.cost_nano_usd == cost_nano_usd
    assert event.hold_id is not None
    holds = {hold.id: hold for hold in await holds_of_any(router)}
    hold = holds[event.hold_id]
    assert hold.state == "captured"
    assert hold.captured_amount == cost_nano_usd
    assert hold.amount == event.quote_nano_usd >= cost_nano_usd


async def holds_of_any(router: RunningRouter) -> list[Any]:
    return [hold for payer in router.payers for hold in await holds_of(router, payer)]


@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_completion_and_stream_are_served_and_charged_exactly(router: RunningRouter, kind: str) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Explain what a router does."},
    ]
    async with openai_client(router, key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=model_id, messages=messages, max_tokens=60, temperature=0.2, seed=7, user="sdk-test"
        )
        completion = raw.parse()
        assert completion.object == "chat.completion"
        assert completion.choices[0].message.role == "assistant"
        assert completion.choices[0].message.content
        assert completion.choices[0].finish_reason in ("stop", "length")
        assert completion.usage is not None, "every adapter's reply carries usage"
        assert completion.usage.prompt_tokens > 0
        assert 0 < completion.usage.completion_tokens <= 60
        assert raw.headers["X-MegaRouter-Model"] == model_id
        assert raw.headers["X-MegaRouter-Attempts"] == f"{model_id}=ok"
        cost_nano_usd = expected_cost_nano_usd(router, model_id, completion.usage)
        assert int(raw.headers["X-MegaRouter-Cost-Nano-USD"]) == cost_nano_usd
        await assert_charged(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)

        async with client.chat.completions.with_streaming_response.create(
            model=model_id,
            messages=messages,
            max_tokens=60,
            stream=True,
            stream_options={"include_usage": True},
        ) as streamed:
            assert streamed.headers["Content-Type"].startswith("text/event-stream")
            assert streamed.headers["X-MegaRouter-Model"] == model_id
            request_id = streamed.headers["X-Request-Id"]
            chunks = [chunk async for chunk in await streamed.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    usage = chunks[-1].usage
    assert usage is not None, "the last chunk is the usage chunk"
    assert chunks[-1].choices == []
    assert usage.completion_tokens > 0
    await assert_charged(router, request_id, cost_nano_usd=expected_cost_nano_usd(router, model_id, usage))
    balance = await credit_balance(router, payer)
    assert balance.pending == 0, "no hold is left open"


@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_tool_call_round_trip(router: RunningRouter, kind: str) -> None:
    model_id = CHAT_MODELS[kind]
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is the weather in Paris?"}
    ]
    async with openai_client(router, key) as client:
        first = await client.chat.completions.create(
            model=model_id, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto", max_tokens=100
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls
        assert len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        assert call.type == "function"
        assert call.function.name == "get_weather"
        assert set(json.loads(call.function.arguments)) == {"city"}
        assert call.id

        # The same first turn streamed: tool-call deltas reassemble into the same call.
        stream = await client.chat.completions.create(
            model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=100, stream=True
        )
        names, arguments = [], []
        async for chunk in stream:
            for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                if delta_call.function and delta_call.function.name:
                    names.append(delta_call.function.name)
                if delta_call.function and delta_call.function.arguments:
                    arguments.append(delta_call.function.arguments)
        assert names == ["get_weather"]
        assert set(json.loads("".join(arguments))) == {"city"}

        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21, "sky": "clear"}'},
        ]
        final = await client.chat.completions.create(
            model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=100
        )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content
    assert not final.choices[0].message.tool_calls
    assert final.usage is not None
    # The tool result went upstream: the prompt of the last turn is longer than the first's.
    assert first.usage is not None
    assert final.usage.prompt_tokens > first.usage.prompt_tokens
    holds = await holds_of(router, payer)
    assert [hold.state for hold in holds] == ["captured"] * 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(CHAT_MODELS))
async def test_json_mode_is_accepted_and_routed_to_json_capable_models(
    router: RunningRouter, kind: str
) -> None:
    model_id = CHAT_MODELS[kind]
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        formats: list[ResponseFormat] = [
            {"type": "json_object"},
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
                },
            },
        ]
        for response_format in formats:
            raw = await client.chat.completions.with_raw_response.create(
                model=model_id,
                messages=[{"role": "user", "content": "Reply in JSON with an 'answer' field."}],
                response_format=response_format,
                max_tokens=50,
            )
            assert raw.headers["X-MegaRouter-Model"] == model_id
            assert raw.parse().choices[0].message.content


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("api_kind", sorted(CHAT_MODELS))
async def test_json_mode_reply_parses_as_json(router: RunningRouter, api_kind: str) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        completion = await client.chat.completions.create(
            model=CHAT_MODELS[api_kind],
            messages=[{"role": "user", "content": "Reply in JSON."}],
            response_format={"type": "json_object"},
            max_tokens=50,
        )
    json.loads(completion.choices[0].message.content or "")


@pytest.mark.parametrize("model_id", EMBEDDING_MODELS)
async def test_embeddings(router: RunningRouter, model_id: str) -> None:
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    async with openai_client(router, key) as client:
        raw = await client.embeddings.with_raw_response.create(
            model=model_id, input=["the router picks a model", "exact integer money"]
        )
        embeddings = raw.parse()
        single = await client.embeddings.create(model=model_id, input="one string")
    assert [item.index for item in embeddings.data] == [0, 1]
    assert all(
        item.embedding and all(isinstance(x, float) for x in item.embedding) for item in embeddings.data
    )
    assert len(embeddings.data[0].embedding) == len(embeddings.data[1].embedding)
    assert len(single.data) == 1
    assert embeddings.usage.prompt_tokens > 0
    model = router.app[CATALOG].get(model_id)
    cost_nano_usd = -(
        -embeddings.usage.prompt_tokens * model.input_price_nano_usd_per_mtok // TOKENS_PER_MTOK
    )
    assert int(raw.headers["X-MegaRouter-Cost-Nano-USD"]) == cost_nano_usd
    await assert_charged(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)
    assert (await credit_balance(router, payer)).pending == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_models_list_and_retrieve(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="0.01")
    async with openai_client(router, key) as client:
        models = [model async for model in client.models.list()]
        ids = [model.id for model in models]
        assert len(ids) >= 200
        assert len(set(ids)) == len(ids)
        assert set(CHAT_MODELS.values()) | set(EMBEDDING_MODELS) <= set(ids)
        for model_id in CHAT_MODELS.values():
            model = await client.models.retrieve(model_id)
            catalog_model = router.app[CATALOG].get(model_id)
            extra = model.model_extra or {}
            assert model.id == model_id
            assert model.object == "model"
            assert model.owned_by == catalog_model.provider
            assert extra["pricing"]["input"] == catalog_model.input_price_nano_usd_per_mtok
            assert extra["pricing"]["output"] == catalog_model.output_price_nano_usd_per_mtok
            assert extra["context_window"] == catalog_model.context_window_tokens
            assert extra["capabilities"]["tools"] is True
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("nobody/no-such-model")


async def test_caller_errors_fail_before_anything_is_held(router: RunningRouter) -> None:
    payer = router.payers[7]
    key = await funded_key(router, payer, amount_usd="1")
    balance_before = await credit_balance(router, payer)
    calls_before = await router.upstream_calls()
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
    async with openai_client(router, key) as client:
        with pytest.raises(openai.NotFoundError) as not_found:
            await client.chat.completions.create(model="nobody/no-such-model", messages=hello)
        assert not_found.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad_type:
            await client.chat.completions.create(
                model=CHAT_MODELS["openai"],
                messages=hello,
                extra_body={"temperature": "very hot"},
            )
        assert bad_type.value.param is not None
        assert "temperature" in bad_type.value.param
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model=CHAT_MODELS["openai"], messages=[])
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model=CHAT_MODELS["openai"], messages=hello, n=2)
        # A model without JSON mode, asked for JSON, is refused rather than silently served as text.
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="anthropic/claude-3-5-haiku-latest",
                messages=hello,
                response_format={"type": "json_object"},
            )
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="nobody/no-such-embedder", input="x")
        with pytest.raises(openai.BadRequestError):
            await client.embeddings.create(model=CHAT_MODELS["openai"], input="a chat model cannot embed")
        # The Gemini adapter does not translate embeddings yet: a clear 400, not a 500 after a hold.
        with pytest.raises(openai.BadRequestError) as unsupported:
            await client.embeddings.create(model="google/gemini-embedding-001", input="x")
        assert unsupported.value.code == "model_not_supported"
        # About 130,000 tokens: over gpt-4o-mini's 128,000-token window.
        window = router.app[CATALOG].get(CHAT_MODELS["openai"]).context_window_tokens
        huge = " ".join(["word"] * (window + 2_000))
        with pytest.raises(openai.BadRequestError) as too_long:
            await client.chat.completions.create(
                model=CHAT_MODELS["openai"], messages=[{"role": "user", "content": huge}]
            )
        assert too_long.value.code == "context_length_exceeded"
    assert await holds_of(router, payer) == [], "no hold was taken for any refused request"
    assert await credit_balance(router, payer) == balance_before
    assert await router.upstream_calls() == calls_before
