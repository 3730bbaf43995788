"""What `POST /v1/messages`, `/v1/messages/count_tokens` and `POST /v1/responses` write is the real wire
format, field by field: every object and stream event has the keys and value types of the real one of its
kind (tests/data/wire), validates as the official SDK's model with no field the SDK does not know, and a
stream's events come in the real order — for a model behind the OpenAI-compatible adapter, an Anthropic one
(Messages passes through untranslated) and a Gemini one, plain and with tool calls; error bodies too.

Method: the real app (router fixture) with the simulated providers upstream, a funded wallet-bound key, raw
HTTP (so nothing an SDK would smooth over is hidden); the comparisons are in wire_conformance.py.
"""

from __future__ import annotations

import json

import pytest
from anthropic.types import ErrorResponse, Message, MessageTokensCount, RawMessageStreamEvent
from openai.types.responses import Response, ResponseStreamEvent

from proxy.api.responses_stream import ResponsesStreamRenderer
from proxy.api.responses_types import ResponsesRequest
from proxy.errors import UpstreamFailed
from proxy.providers.anthropic_inbound import AnthropicStreamRenderer
from tests.e2e.api.support import funded_key
from tests.e2e.api.wire_conformance import (
    ANTHROPIC_STREAM,
    RESPONSES_STREAM,
    JsonObject,
    assert_events_match,
    assert_same_shape,
    assert_sdk_model,
    event_names,
    fixture_events,
    fixture_json,
    parse_sse,
)
from tests.fixtures.app import RunningRouter

MESSAGES_MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}
RESPONSES_MODELS = {"anthropic": "anthropic/claude-haiku-4-5", "gemini": "google/gemini-2.5-flash-lite"}
PING = frozenset({"ping"})
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": CITY_SCHEMA,
}
RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": CITY_SCHEMA,
}
ANTHROPIC_STREAMS = ("anthropic/stream_text.sse", "anthropic/stream_tool_use.sse")
RESPONSES_STREAMS = ("openai/stream_text.sse", "openai/stream_function_call.sse")
# The real Response echoes `store`, which the SDK's model does not define; nothing else may be unknown to it.
RESPONSE_FIELDS_NOT_IN_SDK = ("store",)


async def _post(
    router: RunningRouter, path: str, body: JsonObject, headers: dict[str, str]
) -> tuple[int, str]:
    response = await router.client.post(path, json=body, headers=headers)
    return response.status, await response.text()


def _without(payload: JsonObject, *keys: str) -> JsonObject:
    return {key: value for key, value in payload.items() if key not in keys}


def _assert_anthropic_message(message: JsonObject, real: JsonObject) -> None:
    assert_same_shape(message, real)
    assert_sdk_model(message, Message)


def _assert_anthropic_stream(text: str) -> list[tuple[str, JsonObject]]:
    events = parse_sse(text)
    assert ANTHROPIC_STREAM.fullmatch(event_names(events, skip=PING)), event_names(events)
    assert_events_match(events, fixture_events(*ANTHROPIC_STREAMS))
    for name, payload in events:
        if name not in PING:  # The SDK skips pings; their shape is checked against the recorded one.
            assert_sdk_model(payload, RawMessageStreamEvent)
    blocks = [payload for _, payload in events if payload["type"] == "content_block_start"]
    assert [block["index"] for block in blocks] == list(range(len(blocks))), "block indices count from 0"
    return events


def _assert_response(response: JsonObject, real: JsonObject) -> None:
    assert_same_shape(response, real)
    assert_sdk_model(_without(response, *RESPONSE_FIELDS_NOT_IN_SDK), Response)


def _assert_responses_stream(text: str) -> list[tuple[str, JsonObject]]:
    events = parse_sse(text)
    assert RESPONSES_STREAM.fullmatch(event_names(events)), event_names(events)
    assert [payload["sequence_number"] for _, payload in events] == list(range(len(events)))
    assert_events_match(events, fixture_events(*RESPONSES_STREAMS))
    for _, payload in events:
        inner = payload.get("response")
        event = {**payload, "response": _without(inner, *RESPONSE_FIELDS_NOT_IN_SDK)} if inner else payload
        assert_sdk_model(event, ResponseStreamEvent)
    final = events[-1][1]["response"]
    done_items = [payload["item"] for _, payload in events if payload["type"] == "response.output_item.done"]
    assert final["output"] == done_items, "the final Response holds the items streamed, in order"
    return events


def test_the_recorded_real_formats_follow_the_order_and_the_sdk_models() -> None:
    """The references agree with each other: the recorded streams match the orders asserted of ours, and
    every recorded object validates as the SDK's model (so neither reference is a typo of the other)."""
    for name in ANTHROPIC_STREAMS:
        events = fixture_events(name)
        assert ANTHROPIC_STREAM.fullmatch(event_names(events, skip=PING))
        for event_name, payload in events:
            if event_name not in PING:
                assert_sdk_model(payload, RawMessageStreamEvent)
    for name in RESPONSES_STREAMS:
        assert RESPONSES_STREAM.fullmatch(event_names(fixture_events(name)))
    for name in ("anthropic/message.json", "anthropic/message_tool_use.json"):
        assert_sdk_model(fixture_json(name), Message)
    assert_sdk_model(fixture_json("anthropic/count_tokens.json"), MessageTokensCount)
    assert_sdk_model(fixture_json("anthropic/error.json"), ErrorResponse)
    for name in ("openai/response.json", "openai/response_function_call.json"):
        assert_sdk_model(_without(fixture_json(name), *RESPONSE_FIELDS_NOT_IN_SDK), Response)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(MESSAGES_MODELS))
async def test_messages_and_their_streams_are_the_real_format(router: RunningRouter, kind: str) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    base: JsonObject = {"model": MESSAGES_MODELS[kind], "max_tokens": 60}
    plain = {**base, "messages": [{"role": "user", "content": "Explain what a router does."}]}
    tool = {
        **base,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [ANTHROPIC_TOOL],
        "tool_choice": {"type": "tool", "name": "get_weather"},
    }

    status, text = await _post(router, "/v1/messages", plain, headers)
    assert status == 200, text
    _assert_anthropic_message(json.loads(text), fixture_json("anthropic/message.json"))

    status, text = await _post(router, "/v1/messages", tool, headers)
    assert status == 200, text
    message = json.loads(text)
    assert message["stop_reason"] == "tool_use"
    _assert_anthropic_message(message, fixture_json("anthropic/message_tool_use.json"))

    status, text = await _post(router, "/v1/messages", {**plain, "stream": True}, headers)
    assert status == 200, text
    events = _assert_anthropic_stream(text)
    assert any(payload.get("delta", {}).get("type") == "text_delta" for _, payload in events)

    status, text = await _post(router, "/v1/messages", {**tool, "stream": True}, headers)
    assert status == 200, text
    events = _assert_anthropic_stream(text)
    assert any(payload.get("delta", {}).get("type") == "input_json_delta" for _, payload in events)

    status, text = await _post(router, "/v1/messages/count_tokens", _without(plain, "max_tokens"), headers)
    assert status == 200, text
    counted = json.loads(text)
    assert_same_shape(counted, fixture_json("anthropic/count_tokens.json"))
    assert_sdk_model(counted, MessageTokensCount)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_messages_error_bodies_are_the_real_format(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    real = fixture_json("anthropic/error.json")
    cases: list[tuple[JsonObject, dict[str, str], int]] = [
        (
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            {"x-api-key": key},
            400,
        ),
        ({"model": "no/such-model", "max_tokens": 5, "messages": []}, {"x-api-key": key}, 400),
        (
            {"model": "openai/gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            {"x-api-key": "mr_wrong"},
            401,
        ),
    ]
    for body, headers, expected in cases:
        status, text = await _post(router, "/v1/messages", body, headers)
        assert status == expected, text
        error = json.loads(text)
        assert_same_shape(error, real)
        assert_sdk_model(error, ErrorResponse)
    renderer = AnthropicStreamRenderer(message_id="msg_1", input_tokens_estimate=1)
    cut = renderer.failed(UpstreamFailed("the upstream stream was cut"))
    assert_events_match(parse_sse(cut.decode()), fixture_events("anthropic/stream_error.sse"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", sorted(RESPONSES_MODELS))
async def test_responses_and_their_streams_are_the_real_format(router: RunningRouter, kind: str) -> None:
    key = await funded_key(router, router.payers[8], amount_usd="1")
    headers = {"Authorization": f"Bearer {key}"}
    base: JsonObject = {"model": RESPONSES_MODELS[kind], "max_output_tokens": 60}
    plain = {**base, "input": "Explain what a router does.", "instructions": "Be brief."}
    tool = {
        **base,
        "input": "What is the weather in Paris?",
        "tools": [RESPONSES_TOOL],
        "tool_choice": "required",
    }
    schema = {
        **plain,
        "text": {"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA, "strict": True}},
    }

    status, text = await _post(router, "/v1/responses", plain, headers)
    assert status == 200, text
    _assert_response(json.loads(text), fixture_json("openai/response.json"))

    status, text = await _post(router, "/v1/responses", tool, headers)
    assert status == 200, text
    response = json.loads(text)
    assert response["output"][-1]["type"] == "function_call"
    _assert_response(response, fixture_json("openai/response_function_call.json"))

    status, text = await _post(router, "/v1/responses", schema, headers)
    assert status == 200, text
    real_format = {"type": "json_schema", "name": "city", "schema": {}, "strict": True}
    _assert_response(
        json.loads(text), {**fixture_json("openai/response.json"), "text": {"format": real_format}}
    )

    status, text = await _post(router, "/v1/responses", {**plain, "stream": True}, headers)
    assert status == 200, text
    events = _assert_responses_stream(text)
    assert any(name == "response.output_text.delta" for name, _ in events)

    status, text = await _post(router, "/v1/responses", {**tool, "stream": True}, headers)
    assert status == 200, text
    events = _assert_responses_stream(text)
    assert any(name == "response.function_call_arguments.done" for name, _ in events)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_responses_error_bodies_are_the_real_format(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[8], amount_usd="1")
    real = fixture_json("openai/error.json")
    auth = {"Authorization": f"Bearer {key}"}
    cases: list[tuple[JsonObject, dict[str, str], int]] = [
        ({"model": "openai/gpt-4o-mini", "input": 5}, auth, 400),
        ({"model": "openai/gpt-4o-mini", "input": "hi", "previous_response_id": "resp_none"}, auth, 400),
        ({"model": "openai/gpt-4o-mini", "input": "hi"}, {"Authorization": "Bearer mr_wrong"}, 401),
    ]
    for body, headers, expected in cases:
        status, text = await _post(router, "/v1/responses", body, headers)
        assert status == expected, text
        assert_same_shape(json.loads(text), real)
    request = ResponsesRequest.model_validate({"model": "openai/gpt-4o-mini", "input": "hi"})
    renderer = ResponsesStreamRenderer(request, response_id="resp_1", created_at_s=0)
    renderer.opened(model_id="openai/gpt-4o-mini")
    cut = renderer.failed(UpstreamFailed("the upstream stream was cut"))
    assert_events_match(parse_sse(cut.decode()), fixture_events("openai/stream_error.sse"))
