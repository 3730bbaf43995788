# ruff: noqa: E501  (recorded wire payloads stay one event per line, as they appear on the wire)
"""Adapter translations against recorded-shape provider payloads, compared field by field.

Method: pure functions only (no network). Each provider's real request shape (system, image, tool call,
tool result), its JSON response (tool use, cache/thought usage) and its SSE event sequence, as documented
by the providers, are translated and compared with the expected values.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.openai_types import ChatCompletionRequest
from proxy.providers import TokenUsage, UpstreamError
from proxy.providers.anthropic import (
    AnthropicStreamTranslator,
    anthropic_request,
    chat_completion_from_anthropic,
    decode_anthropic_error,
)
from proxy.providers.gemini import (
    GeminiStreamTranslator,
    chat_completion_from_gemini,
    decode_gemini_error,
    gemini_request,
)
from proxy.providers.transport import parse_retry_after_s

IMAGE = "data:image/png;base64,iVBORw0KGgo="
CONVERSATION = ChatCompletionRequest.model_validate(
    {
        "model": "x",
        "max_tokens": 256,
        "temperature": 0.5,
        "stop": ["END"],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 3}'},
        ],
    }
)


def test_anthropic_request_translation() -> None:
    body = anthropic_request(CONVERSATION, upstream_model="claude-sonnet-4-5", stream=True)
    assert body["model"] == "claude-sonnet-4-5"
    assert body["system"] == "Be terse."
    assert body["max_tokens"] == 256
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp_c": 3}'}],
        },
    ]


def test_anthropic_response_translation() -> None:
    recorded = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 30,
        },
    }
    result = chat_completion_from_anthropic(recorded)
    choice = result.response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].id == "toolu_01A"
    assert choice.message.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    assert result.usage == TokenUsage(
        input_tokens=1120, output_tokens=30, cached_input_tokens=1000, cache_write_input_tokens=100
    )
    assert result.usage.uncached_input_tokens == 20


ANTHROPIC_STREAM: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude", "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 128, "cache_creation_input_tokens": 0}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 89}},
    {"type": "message_stop"},
]  # fmt: skip


def test_anthropic_stream_translation() -> None:
    translator = AnthropicStreamTranslator()
    chunks = [chunk for event in ANTHROPIC_STREAM for chunk in translator.feed(event)]
    deltas = [chunk.choices[0].delta for chunk in chunks]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Okay"
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert (calls[0].index, calls[0].id, calls[0].function and calls[0].function.name) == (
        0,
        "toolu_1",
        "get_weather",
    )
    assert "".join(c.function.arguments or "" for c in calls if c.function) == '{"city": "Oslo"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert translator.usage() == TokenUsage(input_tokens=600, output_tokens=89, cached_input_tokens=128)


def test_anthropic_stream_error_and_truncation() -> None:
    translator = AnthropicStreamTranslator()
    translator.feed(ANTHROPIC_STREAM[0])
    with pytest.raises(UpstreamError) as caught:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert caught.value.kind == "overloaded"
    with pytest.raises(UpstreamError) as truncated:
        translator.usage()
    assert truncated.value.kind == "stream_interrupted"


def test_anthropic_error_body() -> None:
    body = '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}'
    error = decode_anthropic_error(400, {}, body)
    assert (error.kind, error.failover_allowed, error.provider_code) == (
        "context_length",
        False,
        "invalid_request_error",
    )
    assert (
        decode_anthropic_error(
            529, {}, '{"type":"error","error":{"type":"overloaded_error","message":"x"}}'
        ).kind
        == "overloaded"
    )


def test_gemini_request_translation() -> None:
    body = gemini_request(CONVERSATION)
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 256, "stopSequences": ["END"]}
    assert body["tools"] == [
        {"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Weather here?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            ],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 3}}}]},
    ]


def test_gemini_response_translation() -> None:
    recorded = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking…", "thought": True},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 2048,
            "candidatesTokenCount": 12,
            "totalTokenCount": 2160,
            "cachedContentTokenCount": 1024,
            "thoughtsTokenCount": 100,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "abcdefghijklmnop",
    }
    result = chat_completion_from_gemini(recorded)
    choice = result.response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    assert result.usage == TokenUsage(
        input_tokens=2048, output_tokens=112, cached_input_tokens=1024, reasoning_tokens=100
    )
    assert result.response.model == "gemini-2.5-flash"


def test_gemini_stream_translation() -> None:
    translator = GeminiStreamTranslator()
    payloads = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.0-flash", "responseId": "r1"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "finishReason": "MAX_TOKENS", "index": 0}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11}, "modelVersion": "gemini-2.0-flash", "responseId": "r1"},
    ]  # fmt: skip
    chunks = [chunk for payload in payloads for chunk in translator.feed(payload)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert translator.usage() == TokenUsage(input_tokens=9, output_tokens=2)


def test_gemini_error_retry_info() -> None:
    body = '{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}'
    error = decode_gemini_error(429, {}, body)
    assert (error.kind, error.retry_after_s, error.provider_code) == (
        "rate_limited",
        37.0,
        "RESOURCE_EXHAUSTED",
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after_s(headers, now_unix_s=1445412480.0) == expected
