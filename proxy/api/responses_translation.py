"""Translates a Responses API request to the internal chat request, and a chat completion back to a Response.

Pure: no I/O. The chat request built here carries only what the Responses request said (no extra fields),
so nothing unknown reaches an upstream. What MegaRouter cannot honour is refused here with a 400 naming
the field. Conversation state (`store`, `previous_response_id`) is the handler's: it hands this module the
whole conversation as input.
"""

from __future__ import annotations

import secrets
from typing import Any

from proxy.api.responses_types import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionToolChoice,
    InputImagePart,
    InputTextPart,
    MessageItem,
    OutputTextPart,
    RefusalPart,
    ResponsesRequest,
    TextFormatJsonObject,
    TextFormatJsonSchema,
)
from proxy.errors import InvalidRequest
from proxy.openai_types import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FinishReason,
    FunctionCall,
    FunctionDefinition,
    ImageContentPart,
    ImageUrl,
    JsonSchemaFormat,
    NamedToolChoice,
    NamedToolChoiceFunction,
    ResponseFormat,
    TextContentPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from proxy.providers.base import TokenUsage

__all__ = [
    "chat_request_of",
    "completed_output",
    "function_call_item",
    "new_item_id",
    "new_response_id",
    "response_object",
    "response_status",
    "responses_usage",
]

ID_RANDOM_BYTES = 24


def new_response_id() -> str:
    return f"resp_{secrets.token_hex(ID_RANDOM_BYTES)}"


def new_item_id(prefix: str) -> str:
    assert prefix in ("msg", "fc")
    return f"{prefix}_{secrets.token_hex(ID_RANDOM_BYTES)}"


# --- request -------------------------------------------------------------------------------------------


def chat_request_of(body: ResponsesRequest) -> ChatCompletionRequest:
    """The chat request that asks the same of a model; refuses what cannot be translated (a 400). The body's
    input is the whole conversation: a continued one (`previous_response_id`) is expanded by the handler."""
    messages = _messages_of(body)
    if not messages:
        raise InvalidRequest("input must not be empty", code="invalid_value", param="input")
    request = ChatCompletionRequest(
        model=body.model,
        messages=messages,
        tools=[_tool_of(tool.name, tool.description, tool.parameters, tool.strict) for tool in body.tools]
        if body.tools
        else None,
        tool_choice=_tool_choice_of(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=_response_format_of(body),
        temperature=body.temperature,
        top_p=body.top_p,
        max_completion_tokens=body.max_output_tokens,
        user=body.user,
        stream=body.stream,
    )
    assert not request.model_extra, "the translated request carries only what was translated"
    return request


def _tool_of(
    name: str, description: str | None, parameters: dict[str, Any] | None, strict: bool | None
) -> ToolDefinition:
    return ToolDefinition(
        function=FunctionDefinition(name=name, description=description, parameters=parameters, strict=strict)
    )


def _tool_choice_of(choice: str | FunctionToolChoice | None) -> ToolChoice | None:
    if isinstance(choice, FunctionToolChoice):
        return NamedToolChoice(function=NamedToolChoiceFunction(name=choice.name))
    assert choice in (None, "none", "auto", "required")
    return choice  # type: ignore[return-value]


def _response_format_of(body: ResponsesRequest) -> ResponseFormat | None:
    text_format = body.text.format if body.text is not None else None
    if isinstance(text_format, TextFormatJsonSchema):
        schema = JsonSchemaFormat(
            name=text_format.name,
            description=text_format.description,
            schema=text_format.schema_,
            strict=text_format.strict,
        )
        return ResponseFormat(type="json_schema", json_schema=schema)
    if isinstance(text_format, TextFormatJsonObject):
        return ResponseFormat(type="json_object")
    return None  # Absent or plain text: the chat default.


def _messages_of(body: ResponsesRequest) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if body.instructions:
        messages.append(ChatMessage(role="system", content=body.instructions))
    if isinstance(body.input, str):
        messages.append(ChatMessage(role="user", content=body.input))
        return messages
    for index, item in enumerate(body.input):
        if isinstance(item, MessageItem):
            messages.append(_message_of(item, param=f"input.{index}.content"))
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(id=item.call_id, function=FunctionCall(name=item.name, arguments=item.arguments))
            previous = messages[-1] if messages else None
            if previous is not None and previous.role == "assistant":
                # One assistant turn: its text and every call it made, as the chat format has it.
                previous.tool_calls = [*(previous.tool_calls or []), call]
            else:
                messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        else:
            assert isinstance(item, FunctionCallOutputItem)
            output = (
                item.output if isinstance(item.output, str) else "\n".join(part.text for part in item.output)
            )
            messages.append(ChatMessage(role="tool", tool_call_id=item.call_id, content=output))
    return messages


def _message_of(item: MessageItem, *, param: str) -> ChatMessage:
    if isinstance(item.content, str):
        return ChatMessage(role=item.role, content=item.content)
    if item.role == "assistant":
        # An earlier answer sent back: its text (and refusals) as the assistant's turn.
        texts = [
            part.text if isinstance(part, OutputTextPart | InputTextPart) else _refusal_text(part, param)
            for part in item.content
        ]
        return ChatMessage(role="assistant", content="".join(texts))
    parts: list[ContentPart] = []
    for index, part in enumerate(item.content):
        if isinstance(part, InputTextPart):
            parts.append(TextContentPart(type="text", text=part.text))
        elif isinstance(part, InputImagePart):
            parts.append(
                ImageContentPart(type="image_url", image_url=ImageUrl(url=part.image_url, detail=part.detail))
            )
        else:
            raise InvalidRequest(
                f"a {item.role} message cannot carry a {part.type} part",
                code="invalid_value",
                param=f"{param}.{index}.type",
            )
    return ChatMessage(role=item.role, content=parts)


def _refusal_text(part: object, param: str) -> str:
    if isinstance(part, RefusalPart):
        return part.refusal
    raise InvalidRequest(
        "an assistant message carries only output_text and refusal parts", code="invalid_value", param=param
    )


# --- response ------------------------------------------------------------------------------------------


def responses_usage(usage: TokenUsage) -> dict[str, Any]:
    """The Responses `usage` object (its convention is ours: cached and reasoning inside the totals)."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def response_status(finish_reason: FinishReason | None) -> tuple[str, dict[str, str] | None]:
    """The response's status and incomplete_details for the way the model stopped."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def function_call_item(
    *, item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_object(
    body: ResponsesRequest,
    *,
    response_id: str,
    created_at_s: int,
    model_id: str,
    status: str,
    output: list[dict[str, Any]],
    usage: TokenUsage | None,
    incomplete_details: dict[str, str] | None = None,
    store: bool = False,
) -> dict[str, Any]:
    """A Response object: the answer, and the request fields an SDK expects echoed."""
    text = body.text.model_dump(mode="json", exclude_none=True) if body.text else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at_s,
        "status": status,
        "error": None,
        "incomplete_details": incomplete_details,
        "model": model_id,
        "output": output,
        "usage": responses_usage(usage) if usage is not None else None,
        "instructions": body.instructions,
        "tools": [tool.model_dump(mode="json") for tool in body.tools or []],
        "tool_choice": _echoed_tool_choice(body.tool_choice),
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "text": {"format": {"type": "text"}, **text},
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "user": body.user,
        "store": store,
        "previous_response_id": body.previous_response_id,
        "truncation": "disabled",
        "background": False,
        "reasoning": {"effort": None, "summary": None},
    }


def _echoed_tool_choice(choice: str | FunctionToolChoice | None) -> Any:
    if isinstance(choice, FunctionToolChoice):
        return choice.model_dump(mode="json")
    return choice or "auto"


def completed_output(completion: ChatCompletion, *, status: str) -> list[dict[str, Any]]:
    """The output items of a whole chat completion: its message (text or refusal), then its calls."""
    assert completion.choices, "a chat completion has a choice"
    message = completion.choices[0].message
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    if message.content:
        content.append({"type": "output_text", "text": message.content, "annotations": [], "logprobs": []})
    if message.refusal:
        content.append({"type": "refusal", "refusal": message.refusal})
    if content:
        output.append(
            {
                "type": "message",
                "id": new_item_id("msg"),
                "status": item_status,
                "role": "assistant",
                "content": content,
            }
        )
    for call in message.tool_calls or []:
        output.append(
            function_call_item(
                item_id=new_item_id("fc"),
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments,
                status="completed",
            )
        )
    return output
