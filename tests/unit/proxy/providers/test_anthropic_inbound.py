"""Anthropic's Messages API into the internal chat format and back (proxy/providers/anthropic_inbound.py).

Goal: every part of a Messages request that the internal format can carry arrives there, what it cannot is
refused by name, and the reply and its stream come back in Anthropic's exact shapes and order.
Method: pure translation of hand-written Messages bodies (shaped as Anthropic documents them) and of
OpenAI chunks as the pipeline relays them; the streamed events are parsed back from their SSE bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from proxy.anthropic_types import CountTokensRequest, MessagesRequest
from proxy.errors import AuthenticationFailed, InvalidRequest, NotFound, UpstreamTimeout, UpstreamUnavailable
from proxy.openai_types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    FunctionCall,
    FunctionCallDelta,
    ImageContentPart,
    NamedToolChoice,
    TextContentPart,
    ToolCall,
    ToolCallDelta,
)
from proxy.providers.anthropic_inbound import (
    AnthropicStreamRenderer,
    anthropic_error_body,
    chat_request_from_messages,
    message_from_chat,
)
from proxy.providers.base import ChatResult, TokenUsage
from proxy.providers.errors import UnsupportedRequest

PNG_BASE64 = "iVBORw0KGgo="
TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _request(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate({"model": "auto", "max_tokens": 100, **fields})


def test_system_blocks_sampling_and_metadata_translate() -> None:
    request = _request(
        system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}],
        messages=[{"role": "user", "content": "Hi"}],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
    )
    chat = chat_request_from_messages(request, stream=True)
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be terse.\nAnswer in French."),
        ("user", "Hi"),
    ]
    assert (chat.max_tokens, chat.temperature, chat.top_p, chat.stop, chat.user) == (
        100,
        0.5,
        0.9,
        ["END"],
        "u-1",
    )
    assert chat.stream is True
    assert "top_k" not in chat.model_dump(exclude_none=True), "OpenAI-style upstreams have no top_k"


def test_images_tool_use_and_tool_results_translate_in_openai_order() -> None:
    request = _request(
        tools=[TOOL],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here, and the weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "They want weather.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Also: be brief."},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "21C"}],
                    },
                ],
            },
        ],
    )
    chat = chat_request_from_messages(request)
    user, assistant, tool, follow_up = chat.messages
    assert isinstance(user.content, list)
    text, inline, linked = user.content
    assert isinstance(text, TextContentPart)
    assert isinstance(inline, ImageContentPart)
    assert inline.image_url.url == f"data:image/png;base64,{PNG_BASE64}"
    assert isinstance(linked, ImageContentPart)
    assert linked.image_url.url == "https://example.com/a.jpg"
    assert (assistant.role, assistant.content) == ("assistant", "Checking.")
    assert assistant.tool_calls is not None
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in assistant.tool_calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"})
    ]
    # A tool result answers the assistant's call, so it comes right after it, before the turn's text.
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "toolu_1", "21C")
    assert follow_up.role == "user"
    assert chat.tools is not None
    assert chat.tools[0].function.name == "get_weather"
    assert chat.tools[0].function.parameters == TOOL["input_schema"]
    assert (chat.tool_choice, chat.parallel_tool_calls) == ("required", False)


def test_named_tool_choice_and_error_results() -> None:
    request = _request(
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "no such city", "is_error": True}
                ],
            }
        ],
    )
    chat = chat_request_from_messages(request)
    assert isinstance(chat.tool_choice, NamedToolChoice)
    assert chat.tool_choice.function.name == "get_weather"
    assert chat.messages[0].content == "Error: no such city"


def test_what_cannot_be_carried_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="document"):
        _request(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}])
    with pytest.raises(ValidationError, match="max_tokens"):
        MessagesRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(ValidationError, match="stop_sequences"):
        _request(messages=[{"role": "user", "content": "x"}], stop_sequences=["a", "b", "c", "d", "e"])
    with pytest.raises(ValidationError, match="temperature"):
        _request(messages=[{"role": "user", "content": "x"}], temperature=1.5)
    image_result = _request(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
                        ],
                    }
                ],
            }
        ]
    )
    with pytest.raises(UnsupportedRequest, match="image"):
        chat_request_from_messages(image_result)
    tool_in_user_turn = _request(
        messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]
    )
    with pytest.raises(UnsupportedRequest, match="tool_use"):
        chat_request_from_messages(tool_in_user_turn)


def test_count_tokens_request_has_no_sampling_fields() -> None:
    request = CountTokensRequest.model_validate(
        {"model": "auto", "system": "S", "tools": [TOOL], "messages": [{"role": "user", "content": "x"}]}
    )
    chat = chat_request_from_messages(request)
    assert (chat.max_tokens, chat.stream) == (None, None)
    assert [m.role for m in chat.messages] == ["system", "user"]


def _result(message: AssistantMessage, finish: Any, usage: TokenUsage) -> ChatResult:
    completion = ChatCompletion(
        id="chatcmpl-1",
        created=1,
        model="gpt-4o-mini",
        choices=[Choice(message=message, finish_reason=finish)],
    )
    return ChatResult(response=completion, usage=usage)


def test_reply_becomes_a_message_with_parsed_tool_input_and_anthropic_usage() -> None:
    message = AssistantMessage(
        content="Let me check.",
        tool_calls=[
            ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city":"Paris"}')),
            ToolCall(id="call_2", function=FunctionCall(name="get_weather", arguments="not json")),
        ],
    )
    usage = TokenUsage(
        input_tokens=100, output_tokens=20, cached_input_tokens=30, cache_write_input_tokens=10
    )
    reply = message_from_chat(_result(message, "tool_calls", usage), message_id="msg_abc")
    assert reply == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-mini",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"arguments": "not json"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        # Anthropic's input_tokens exclude cache reads and writes.
        "usage": {
            "input_tokens": 60,
            "output_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 10,
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish: str, stop_reason: str) -> None:
    usage = TokenUsage(input_tokens=1, output_tokens=1)
    reply = message_from_chat(_result(AssistantMessage(content="x"), finish, usage), message_id="msg_1")
    assert reply["stop_reason"] == stop_reason


def test_error_bodies_use_anthropic_types() -> None:
    cases = [
        (InvalidRequest("bad"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (NotFound("none"), "not_found_error"),
        (UpstreamUnavailable("busy"), "overloaded_error"),
        (UpstreamTimeout("slow"), "timeout_error"),
    ]
    for error, error_type in cases:
        assert anthropic_error_body(error) == {
            "type": "error",
            "error": {"type": error_type, "message": error.message},
        }


def _chunk(delta: ChoiceDelta, finish: Any = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="c", created=1, model="claude-haiku-4-5", choices=[ChunkChoice(delta=delta, finish_reason=finish)]
    )


def _events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload) of each SSE event; the name must match the payload's type."""
    events = []
    for frame in data.decode().split("\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split("\n")
        name = name_line.removeprefix("event: ")
        payload = json.loads(data_line.removeprefix("data: "))
        assert payload["type"] == name
        events.append((name, payload))
    return events


def test_stream_renders_anthropic_event_sequence_for_text_then_tools() -> None:
    renderer = AnthropicStreamRenderer(message_id="msg_1", input_tokens_estimate=12)
    chunks = [
        _chunk(ChoiceDelta(role="assistant", content="")),
        _chunk(ChoiceDelta(content="Let me ")),
        _chunk(ChoiceDelta(content="check.")),
        _chunk(
            ChoiceDelta(
                tool_calls=[
                    ToolCallDelta(
                        index=0, id="call_1", type="function", function=FunctionCallDelta(name="get_weather")
                    )
                ]
            )
        ),
        _chunk(
            ChoiceDelta(tool_calls=[ToolCallDelta(index=0, function=FunctionCallDelta(arguments='{"city":'))])
        ),
        _chunk(
            ChoiceDelta(tool_calls=[ToolCallDelta(index=0, function=FunctionCallDelta(arguments='"Paris"}'))])
        ),
        _chunk(
            ChoiceDelta(
                tool_calls=[ToolCallDelta(index=1, id="call_2", function=FunctionCallDelta(name="f"))]
            )
        ),
        _chunk(ChoiceDelta(), finish="tool_calls"),
    ]
    data = b"".join(renderer.chunk(chunk) for chunk in chunks)
    usage = TokenUsage(input_tokens=50, output_tokens=9, cached_input_tokens=5)
    data += renderer.finished(reported=usage, charged=usage)
    events = _events(data)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert events[3][1] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Let me "},
    }
    assert events[6][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {},
    }
    assert events[6][1]["index"] == 1
    assert [payload["delta"] for _, payload in events[7:9]] == [
        {"type": "input_json_delta", "partial_json": '{"city":'},
        {"type": "input_json_delta", "partial_json": '"Paris"}'},
    ]
    assert events[10][1]["index"] == 2
    assert events[12][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 45,
            "output_tokens": 9,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 0,
        },
    }


def test_stream_without_chunks_still_starts_and_ends_and_a_cut_stream_ends_with_error() -> None:
    renderer = AnthropicStreamRenderer(message_id="msg_2", input_tokens_estimate=3)
    estimated = TokenUsage(input_tokens=3, output_tokens=0, estimated=True)
    names = [name for name, _ in _events(renderer.finished(reported=None, charged=estimated))]
    assert names == ["message_start", "ping", "message_delta", "message_stop"]

    cut = AnthropicStreamRenderer(message_id="msg_3", input_tokens_estimate=3)
    data = cut.chunk(_chunk(ChoiceDelta(content="Hel"))) + cut.failed(UpstreamTimeout("the upstream stalled"))
    events = _events(data)
    assert [name for name, _ in events][-1] == "error"
    assert "message_stop" not in [name for name, _ in events]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "timeout_error", "message": "the upstream stalled"},
    }
