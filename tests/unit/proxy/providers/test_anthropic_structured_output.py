# ruff: noqa: E501  (recorded wire payloads stay one event per line, as they appear on the wire)
"""A json_schema response_format through the Anthropic adapter: sent as a forced tool, answered as content.

Method: pure translation functions only. The request must carry the caller's schema as the forced
`json_response` tool (wrapped under `value` when it is not an object schema), and replies in the recorded
Messages API shapes (JSON body and SSE events of a tool_use block) must come back as the assistant's
content with finish_reason "stop" (or "length"), unwrapped, with no tool_calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from proxy.catalog.pricing import prompt_tokens_upper_bound
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.anthropic import (
    JSON_RESPONSE_TOOL_NAME,
    AnthropicStreamTranslator,
    anthropic_request,
    chat_completion_from_anthropic,
    json_response_tool,
)
from proxy.providers.errors import UnsupportedRequest


class Item(BaseModel):
    name: str
    grams: int


class Recipe(BaseModel):
    title: str
    items: list[Item]


RECIPE_SCHEMA = Recipe.model_json_schema()
ITEMS_SCHEMA = TypeAdapter(list[Item]).json_schema()  # An array whose items refer to "#/$defs/Item".


def request_with(response_format: dict[str, Any], **fields: object) -> ChatCompletionRequest:
    body = {
        "model": "x",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Pancakes?"}],
        "response_format": response_format,
        **fields,
    }
    return ChatCompletionRequest.model_validate(body)


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def test_object_schema_is_a_forced_tool() -> None:
    body = anthropic_request(
        request_with(schema_format(RECIPE_SCHEMA)), upstream_model="claude", stream=False
    )
    assert body["tools"] == [
        {
            "name": JSON_RESPONSE_TOOL_NAME,
            "description": body["tools"][0]["description"],
            "input_schema": RECIPE_SCHEMA,
        }
    ]
    assert "final answer" in body["tools"][0]["description"]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_RESPONSE_TOOL_NAME}
    assert body["system"] == "Be terse."


def test_non_object_schema_is_wrapped_with_its_definitions_at_the_root() -> None:
    body = anthropic_request(request_with(schema_format(ITEMS_SCHEMA)), upstream_model="claude", stream=False)
    assert body["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["value"],
        "$defs": ITEMS_SCHEMA["$defs"],
    }
    assert "$defs" in ITEMS_SCHEMA  # The caller's request is left as it was.


def test_json_object_keeps_the_system_prompt_instruction() -> None:
    body = anthropic_request(request_with({"type": "json_object"}), upstream_model="claude", stream=False)
    assert "tools" not in body
    assert "tool_choice" not in body
    assert body["system"] == "Be terse.\n\nRespond with a single JSON value and nothing else."


def test_schema_with_caller_tools_is_refused() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    request = request_with(schema_format(RECIPE_SCHEMA), tools=[tool])
    with pytest.raises(UnsupportedRequest, match="json_schema together with tools"):
        anthropic_request(request, upstream_model="claude", stream=False)


def recorded_reply(tool_input: dict[str, Any], stop_reason: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [
            {"type": "tool_use", "id": "toolu_01", "name": JSON_RESPONSE_TOOL_NAME, "input": tool_input}
        ],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 20},
    }


RECIPE = {"title": "Pancakes", "items": [{"name": "flour", "grams": 200}]}


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [("tool_use", "stop"), ("max_tokens", "length")])
def test_json_reply_is_content(stop_reason: str, finish_reason: str) -> None:
    json_tool = json_response_tool(request_with(schema_format(RECIPE_SCHEMA)))
    result = chat_completion_from_anthropic(recorded_reply(RECIPE, stop_reason), json_tool=json_tool)
    choice = result.response.choices[0]
    assert choice.message.content == '{"title":"Pancakes","items":[{"name":"flour","grams":200}]}'
    assert choice.message.tool_calls is None
    assert choice.finish_reason == finish_reason


def test_json_reply_of_a_wrapped_schema_is_unwrapped() -> None:
    json_tool = json_response_tool(request_with(schema_format(ITEMS_SCHEMA)))
    reply = recorded_reply({"value": RECIPE["items"]}, "tool_use")
    message = chat_completion_from_anthropic(reply, json_tool=json_tool).response.choices[0].message
    assert message.content == '[{"name":"flour","grams":200}]'
    assert message.tool_calls is None


def recorded_stream(pieces: list[str], stop_reason: str) -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude", "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 40, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": JSON_RESPONSE_TOOL_NAME, "input": {}}},
        {"type": "ping"},
        *[{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}} for piece in pieces],
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]  # fmt: skip


def stream_content(
    schema: dict[str, Any], pieces: list[str], stop_reason: str
) -> tuple[list[str], str | None]:
    """The content deltas and the last chunk's finish reason; asserts no tool call was streamed."""
    translator = AnthropicStreamTranslator(json_tool=json_response_tool(request_with(schema_format(schema))))
    chunks = [chunk for event in recorded_stream(pieces, stop_reason) for chunk in translator.feed(event)]
    assert all(not chunk.choices[0].delta.tool_calls for chunk in chunks)
    contents = [chunk.choices[0].delta.content for chunk in chunks[1:] if chunk.choices[0].delta.content]
    return contents, chunks[-1].choices[0].finish_reason


def test_stream_of_an_object_schema_is_content_as_it_arrives() -> None:
    pieces = ['{"title": "Pan', 'cakes", "items": []}']
    contents, finish_reason = stream_content(RECIPE_SCHEMA, pieces, "tool_use")
    assert contents == pieces
    assert finish_reason == "stop"


def test_stream_of_a_wrapped_schema_is_unwrapped_at_the_block_end() -> None:
    pieces = ['{"value": [{"na', 'me": "flour", "grams": 200}]}']
    contents, finish_reason = stream_content(ITEMS_SCHEMA, pieces, "tool_use")
    assert contents == ['[{"name":"flour","grams":200}]']
    assert finish_reason == "stop"


def test_cut_off_stream_of_a_wrapped_schema_gives_the_value_written_so_far() -> None:
    contents, finish_reason = stream_content(ITEMS_SCHEMA, ['{"value": [{"name": "fl'], "max_tokens")
    assert contents == ['[{"name": "fl']
    assert finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(contents[0])


# Anthropic documents a tool-use system prompt of 313 tokens with a forced tool (346 with auto or none).
ANTHROPIC_FORCED_TOOL_SYSTEM_PROMPT_TOKENS = 313


@pytest.mark.parametrize("schema", [RECIPE_SCHEMA, ITEMS_SCHEMA], ids=["object", "wrapped"])
def test_quote_bounds_the_forced_tool(schema: dict[str, Any]) -> None:
    """The hold is quoted from the caller's request, so it must cover what the adapter sends instead: the
    tool definition (wrapper and description included) and Anthropic's tool-use system prompt."""
    request = request_with(schema_format(schema))
    body = anthropic_request(request, upstream_model="claude", stream=False)
    sent_bytes = len(json.dumps({key: body[key] for key in ("system", "messages", "tools", "tool_choice")}))
    structured = request.model_dump(mode="json", exclude_none=True, include={"response_format"})
    messages = [message.model_dump(mode="json", exclude_none=True) for message in request.messages]
    quoted = prompt_tokens_upper_bound(messages, response_format=structured["response_format"])
    # A token is at least one byte, so the JSON size of what is sent bounds its tokens.
    assert quoted >= sent_bytes + ANTHROPIC_FORCED_TOOL_SYSTEM_PROMPT_TOKENS
