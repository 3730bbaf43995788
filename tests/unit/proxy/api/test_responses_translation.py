"""The Responses API translation both ways: request → internal chat request, chat completion → Response.

Pure: models in, models and dicts out. Covers every input item kind, tools, tool choice and text formats,
the refusals of what MegaRouter does not support, the status of a cut answer and the usage object.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proxy.api.responses_translation import (
    chat_request_of,
    completed_output,
    new_response_id,
    response_object,
    response_status,
)
from proxy.api.responses_types import ResponsesRequest
from proxy.errors import InvalidRequest
from proxy.openai_types import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    FunctionCall,
    ImageContentPart,
    NamedToolChoice,
    TextContentPart,
    ToolCall,
)
from proxy.providers.base import TokenUsage

MODEL = "anthropic/claude-haiku-4-5"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def request(**fields: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": MODEL, "input": "Hi", **fields})


def test_a_string_input_with_instructions_is_a_system_then_a_user_message() -> None:
    chat = chat_request_of(request(instructions="Be terse.", input="Hello", max_output_tokens=50))
    assert [(m.role, m.content) for m in chat.messages] == [("system", "Be terse."), ("user", "Hello")]
    assert chat.max_completion_tokens == 50
    assert chat.model == MODEL
    assert chat.model_extra == {}


def test_sampling_user_and_stream_carry_over() -> None:
    chat = chat_request_of(
        request(temperature=0.5, top_p=0.9, user="u-1", stream=True, parallel_tool_calls=False)
    )
    assert (chat.temperature, chat.top_p, chat.user, chat.stream) == (0.5, 0.9, "u-1", True)
    assert chat.parallel_tool_calls is False


def test_metadata_is_echoed_not_sent_upstream() -> None:
    body = request(metadata={"case": "a"})
    chat = chat_request_of(body)
    assert "metadata" not in chat.model_dump(exclude_none=True)
    usage = TokenUsage(input_tokens=1, output_tokens=1)
    echoed = response_object(
        body, response_id="resp_1", created_at_s=1, model_id=MODEL, status="completed", output=[], usage=usage
    )
    assert echoed["metadata"] == {"case": "a"}


def test_message_items_keep_roles_and_translate_parts() -> None:
    chat = chat_request_of(
        request(
            input=[
                {"role": "developer", "content": "Rules."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                    ],
                },
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "A cat.", "annotations": []}],
                },
            ]
        )
    )
    developer, user, assistant = chat.messages
    assert (developer.role, developer.content) == ("developer", "Rules.")
    assert user.role == "user"
    assert isinstance(user.content, list)
    text, image = user.content
    assert isinstance(text, TextContentPart)
    assert text.text == "What is this?"
    assert isinstance(image, ImageContentPart)
    assert (image.image_url.url, image.image_url.detail) == ("https://example.com/a.png", "low")
    assert (assistant.role, assistant.content) == ("assistant", "A cat.")


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages() -> None:
    chat = chat_request_of(
        request(
            input=[
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking."},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "get_weather",
                    "arguments": '{"city":"Rome"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "21C"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "25C"}],
                },
            ]
        )
    )
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "tool"]
    assistant = chat.messages[1]
    assert assistant.content == "Checking."
    assert [(c.id, c.function.name, c.function.arguments) for c in assistant.tool_calls or []] == [
        ("c1", "get_weather", '{"city":"Paris"}'),
        ("c2", "get_weather", '{"city":"Rome"}'),
    ]
    assert [(m.tool_call_id, m.content) for m in chat.messages[2:]] == [("c1", "21C"), ("c2", "25C")]


def test_a_function_call_without_assistant_text_opens_its_own_turn() -> None:
    chat = chat_request_of(
        request(
            input=[
                {"role": "user", "content": "Weather?"},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            ]
        )
    )
    assistant = chat.messages[1]
    assert (assistant.role, assistant.content) == ("assistant", None)
    assert [c.id for c in assistant.tool_calls or []] == ["c1"]


def test_tools_and_tool_choice_translate() -> None:
    chat = chat_request_of(
        request(tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "get_weather"})
    )
    assert chat.tools is not None
    (tool,) = chat.tools
    assert tool.function.name == "get_weather"
    assert tool.function.description == "Current weather"
    assert tool.function.parameters == WEATHER_TOOL["parameters"]
    assert tool.function.strict is True
    assert isinstance(chat.tool_choice, NamedToolChoice)
    assert chat.tool_choice.function.name == "get_weather"
    assert chat_request_of(request(tools=[WEATHER_TOOL], tool_choice="required")).tool_choice == "required"


@pytest.mark.parametrize(
    ("text_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": True},
            {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True},
            },
        ),
    ],
)
def test_text_format_becomes_the_response_format(text_format: dict[str, Any], expected: Any) -> None:
    chat = chat_request_of(request(text={"format": text_format}))
    dumped = chat.response_format.model_dump(mode="json", exclude_none=True) if chat.response_format else None
    assert dumped == expected


def test_conversation_state_fields_are_the_handlers_not_the_translations() -> None:
    """store and previous_response_id never reach the chat request: the handler expands the conversation."""
    for fields in ({"store": False}, {"store": True}, {"previous_response_id": "resp_1"}):
        chat = chat_request_of(request(**fields))
        assert chat.messages[0].content == "Hi"
        assert not chat.model_extra


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"background": True}, "background"),
        ({"include": []}, "include"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"text": {"verbosity": "low"}}, "text"),
    ],
)
def test_unknown_fields_fail_validation_at_their_place(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        request(**fields)
    assert refused.value.errors()[0]["loc"][0] == field


def test_user_messages_refuse_output_parts_and_an_empty_input_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        chat_request_of(request(input=[{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]))
    assert refused.value.param == "input.0.content.0.type"
    with pytest.raises(InvalidRequest) as empty:
        chat_request_of(request(input=[]))
    assert empty.value.param == "input"


def completion(message: AssistantMessage, finish_reason: Any) -> ChatCompletion:
    return ChatCompletion(
        id="chatcmpl-1",
        created=1,
        model="upstream-name",
        choices=[Choice(message=message, finish_reason=finish_reason)],
    )


def test_a_completion_becomes_a_message_item_then_function_call_items() -> None:
    message = AssistantMessage(
        content="Let me check.",
        tool_calls=[
            ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city":"Paris"}'))
        ],
    )
    text_item, call_item = completed_output(completion(message, "tool_calls"), status="completed")
    assert text_item["type"] == "message"
    assert text_item["id"].startswith("msg_")
    assert text_item["role"] == "assistant"
    assert text_item["content"] == [
        {"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}
    ]
    assert call_item["type"] == "function_call"
    assert call_item["id"].startswith("fc_")
    assert (call_item["call_id"], call_item["name"], call_item["arguments"]) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )


def test_a_refusal_is_a_refusal_part() -> None:
    (item,) = completed_output(completion(AssistantMessage(refusal="No."), "stop"), status="completed")
    assert item["content"] == [{"type": "refusal", "refusal": "No."}]


def test_status_follows_the_finish_reason() -> None:
    assert response_status("stop") == ("completed", None)
    assert response_status("tool_calls") == ("completed", None)
    assert response_status("length") == ("incomplete", {"reason": "max_output_tokens"})
    assert response_status("content_filter") == ("incomplete", {"reason": "content_filter"})


def test_the_response_object_carries_usage_and_echoes_the_request() -> None:
    body = request(instructions="Be terse.", tools=[WEATHER_TOOL], temperature=0.3, max_output_tokens=9)
    usage = TokenUsage(input_tokens=100, output_tokens=30, cached_input_tokens=40, reasoning_tokens=10)
    response_id = new_response_id()
    answer = response_object(
        body,
        response_id=response_id,
        created_at_s=1_700_000_000,
        model_id=MODEL,
        status="incomplete",
        output=[],
        usage=usage,
        incomplete_details={"reason": "max_output_tokens"},
    )
    assert response_id.startswith("resp_")
    assert answer["id"] == response_id
    assert answer["object"] == "response"
    assert (answer["status"], answer["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert answer["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 10},
        "total_tokens": 130,
    }
    assert answer["instructions"] == "Be terse."
    assert answer["tools"] == [WEATHER_TOOL]
    assert (answer["temperature"], answer["max_output_tokens"]) == (0.3, 9)
    assert answer["tool_choice"] == "auto"
    assert answer["text"] == {"format": {"type": "text"}}
    assert answer["store"] is False
