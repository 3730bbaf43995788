"""Anthropic's Messages API as a front door: a caller's Messages request into the internal (OpenAI) chat
request, and the pipeline's answer (a completion, or a stream of chunks) back into Anthropic's wire format.
The reverse of proxy/providers/anthropic.py, which translates the internal request out to Anthropic.

Request: `system` becomes the first system message; text and image blocks become content parts (base64
sources as data: URLs); assistant `tool_use` blocks become `tool_calls` (input as JSON text); a user turn's
`tool_result` blocks become `tool` messages placed before the rest of that turn (OpenAI wants them right
after the assistant's calls); tools and tool_choice map one to one (`any` is `required`,
`disable_parallel_tool_use` is `parallel_tool_calls: false`); `metadata.user_id` is `user`. Lost on the way
(the internal format has no place for them): `top_k`, thinking blocks of earlier assistant turns, and
`cache_control`. Requests served by Anthropic deployments skip this module: they pass through untranslated
(proxy/serving/passthrough.py), their stream written as it comes by `AnthropicRawRenderer`.

Reply: content becomes a text block, each tool call a `tool_use` block with its arguments parsed;
finish_reason maps to stop_reason (a stop sequence cannot be told apart from a natural end in the internal
format, so it is `end_turn`); usage is the charged TokenUsage in Anthropic's convention (input_tokens
without cache reads and writes). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from proxy.anthropic_types import (
    AnthropicErrorType,
    AnthropicMessage,
    AnthropicToolChoice,
    CountTokensRequest,
    ImageBlock,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from proxy.errors import ApiError
from proxy.json_bounds import loads_bounded_json
from proxy.openai_types import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FinishReason,
    FunctionCall,
    FunctionDefinition,
    ImageContentPart,
    ImageUrl,
    NamedToolChoice,
    NamedToolChoiceFunction,
    TextContentPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from proxy.providers.base import ChatResult, TokenUsage
from proxy.providers.errors import UnsupportedRequest

__all__ = [
    "AnthropicRawRenderer",
    "AnthropicStreamRenderer",
    "anthropic_error_body",
    "anthropic_error_type",
    "anthropic_usage",
    "chat_request_from_messages",
    "message_from_chat",
    "stop_reason_for",
]

StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"]
STOP_REASONS: dict[FinishReason, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES_BY_STATUS: dict[int, AnthropicErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


# --- request ---------------------------------------------------------------------------------------------


def _image_part(block: ImageBlock) -> ImageContentPart:
    source = block.source
    url = source.url if source.type == "url" else f"data:{source.media_type};base64,{source.data}"
    return ImageContentPart(type="image_url", image_url=ImageUrl(url=url))


def _tool_result_text(block: ToolResultBlock) -> str:
    if block.content is None or isinstance(block.content, str):
        text = block.content or ""
    else:
        if any(isinstance(part, ImageBlock) for part in block.content):
            raise UnsupportedRequest(f"tool_result {block.tool_use_id}: image content is not supported")
        text = "\n".join(part.text for part in block.content if isinstance(part, TextBlock))
    return f"Error: {text}" if block.is_error else text


def _user_messages(message: AnthropicMessage) -> list[ChatMessage]:
    if isinstance(message.content, str):
        return [ChatMessage(role="user", content=message.content)]
    tool_messages: list[ChatMessage] = []
    parts: list[ContentPart] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            tool_messages.append(
                ChatMessage(role="tool", tool_call_id=block.tool_use_id, content=_tool_result_text(block))
            )
        elif isinstance(block, TextBlock):
            parts.append(TextContentPart(type="text", text=block.text))
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        else:
            raise UnsupportedRequest(f"a user message cannot carry a {block.type} block")
    return tool_messages + ([ChatMessage(role="user", content=parts)] if parts else [])


def _assistant_message(message: AnthropicMessage) -> ChatMessage:
    if isinstance(message.content, str):
        return ChatMessage(role="assistant", content=message.content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = json.dumps(block.input, separators=(",", ":"))
            calls.append(ToolCall(id=block.id, function=FunctionCall(name=block.name, arguments=arguments)))
        elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            continue  # Earlier reasoning: the internal format has no place for it.
        else:
            raise UnsupportedRequest(f"an assistant message cannot carry a {block.type} block")
    return ChatMessage(role="assistant", content="".join(texts) or None, tool_calls=calls or None)


def _system_text(system: str | list[TextBlock] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    return "\n".join(block.text for block in system) or None


def _tool_choice(choice: AnthropicToolChoice | None) -> tuple[ToolChoice | None, bool | None]:
    """The internal tool_choice and parallel_tool_calls for Anthropic's tool_choice."""
    if choice is None:
        return None, None
    parallel = False if choice.disable_parallel_tool_use else None
    if choice.type == "tool":
        if not choice.name:
            raise UnsupportedRequest("tool_choice of type 'tool' needs the tool's name")
        return NamedToolChoice(function=NamedToolChoiceFunction(name=choice.name)), parallel
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type], parallel  # type: ignore[return-value]


def chat_request_from_messages(request: CountTokensRequest, *, stream: bool = False) -> ChatCompletionRequest:
    """The internal chat request for a Messages (or count_tokens) request; UnsupportedRequest for what the
    internal format cannot say."""
    messages: list[ChatMessage] = []
    system = _system_text(request.system)
    if system is not None:
        messages.append(ChatMessage(role="system", content=system))
    for message in request.messages:
        if message.role == "user":
            messages.extend(_user_messages(message))
        else:
            messages.append(_assistant_message(message))
    tools = [
        ToolDefinition(
            function=FunctionDefinition(
                name=tool.name, description=tool.description, parameters=tool.input_schema
            )
        )
        for tool in request.tools or []
    ]
    tool_choice, parallel = _tool_choice(request.tool_choice)
    fields: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "tools": tools or None,
        "tool_choice": tool_choice if tools else None,
        "parallel_tool_calls": parallel if tools else None,
    }
    if isinstance(request, MessagesRequest):
        fields.update(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop_sequences or None,
            user=request.metadata.user_id if request.metadata else None,
            stream=True if stream else None,
        )
    translated = ChatCompletionRequest(**fields)
    assert translated.messages
    return translated


# --- reply -----------------------------------------------------------------------------------------------


def stop_reason_for(finish_reason: FinishReason | None) -> StopReason:
    return STOP_REASONS[finish_reason] if finish_reason is not None else "end_turn"


def anthropic_usage(usage: TokenUsage) -> dict[str, int]:
    """Anthropic's usage: input_tokens exclude cache reads and writes (TokenUsage's include them)."""
    return {
        "input_tokens": usage.uncached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_input_tokens,
    }


def _tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object a tool_use block carries. Arguments that are not a JSON
    object (a model's mistake, already charged) are kept as text under `arguments` rather than lost."""
    try:
        value = loads_bounded_json(arguments or "{}")
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def message_from_chat(result: ChatResult, *, message_id: str) -> dict[str, Any]:
    """The Anthropic Message for the pipeline's completion; usage is the charged usage."""
    assert message_id.startswith("msg_")
    choice = result.response.choices[0]
    content: list[dict[str, Any]] = []
    if choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    for call in choice.message.tool_calls or []:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": _tool_input(call.function.arguments),
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": result.response.model,
        "content": content,
        "stop_reason": stop_reason_for(choice.finish_reason),
        "stop_sequence": None,
        "usage": anthropic_usage(result.usage),
    }


def anthropic_error_type(error: ApiError) -> AnthropicErrorType:
    return ERROR_TYPES_BY_STATUS.get(
        error.status, "invalid_request_error" if error.status < 500 else "api_error"
    )


def anthropic_error_body(error: ApiError) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}` for an API error."""
    return {"type": "error", "error": {"type": anthropic_error_type(error), "message": error.message}}


# --- stream ----------------------------------------------------------------------------------------------


def _event(name: str, payload: dict[str, Any]) -> bytes:
    assert payload["type"] == name
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class AnthropicStreamRenderer:
    """Renders the pipeline's OpenAI chunks as Anthropic's event sequence: message_start and a ping, then
    per content block content_block_start, its deltas (text_delta, input_json_delta) and
    content_block_stop, then message_delta (stop_reason and usage) and message_stop. Stateful, one per
    stream; a stream relay calls `opened`, `chunk` for each chunk, then `finished` or `failed` once."""

    def __init__(self, *, message_id: str, input_tokens_estimate: int) -> None:
        assert message_id.startswith("msg_")
        assert input_tokens_estimate >= 0
        self._message_id = message_id
        self._input_tokens_estimate = input_tokens_estimate
        self._started = False
        self._open_block: int | None = None
        self._open_kind: Literal["text", "tool_use"] | None = None
        self._blocks = 0
        self._block_by_tool_index: dict[int, int] = {}
        self._finish_reason: FinishReason | None = None

    def _start(self, model: str) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Input tokens are known only at the end; message_delta carries the reported ones.
            "usage": {
                "input_tokens": self._input_tokens_estimate,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [
            _event("message_start", {"type": "message_start", "message": message}),
            _event("ping", {"type": "ping"}),
        ]

    def _close_block(self) -> list[bytes]:
        if self._open_block is None:
            return []
        index, self._open_block, self._open_kind = self._open_block, None, None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open(self, kind: Literal["text", "tool_use"], block: dict[str, Any]) -> list[bytes]:
        events = self._close_block()
        index, self._blocks = self._blocks, self._blocks + 1
        self._open_block, self._open_kind = index, kind
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return [*events, _event("content_block_start", start)]

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def chunk(self, chunk: ChatCompletionChunk) -> bytes:
        events = self._start(chunk.model)
        for choice in chunk.choices:
            if choice.delta.content:
                if self._open_kind != "text":
                    events += self._open("text", {"type": "text", "text": ""})
                assert self._open_block is not None
                events.append(
                    self._delta(self._open_block, {"type": "text_delta", "text": choice.delta.content})
                )
            for call in choice.delta.tool_calls or []:
                if call.index not in self._block_by_tool_index:
                    name = call.function.name if call.function and call.function.name else ""
                    block = {
                        "type": "tool_use",
                        "id": call.id or f"toolu_{call.index}",
                        "name": name,
                        "input": {},
                    }
                    events += self._open("tool_use", block)
                    assert self._open_block is not None
                    self._block_by_tool_index[call.index] = self._open_block
                arguments = call.function.arguments if call.function else None
                if arguments:
                    delta = {"type": "input_json_delta", "partial_json": arguments}
                    events.append(self._delta(self._block_by_tool_index[call.index], delta))
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
        return b"".join(events)

    def opened(self, *, model_id: str) -> bytes:
        del model_id  # message_start names the model of the first chunk, as the upstream reports it.
        return b""

    def finished(self, *, reported: TokenUsage | None, charged: TokenUsage) -> bytes:
        """The closing events; the usage is the charged one (reported, else estimated)."""
        del reported  # Anthropic's stream always ends with usage: the charged one, estimated or not.
        events = self._start("") + self._close_block()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason_for(self._finish_reason), "stop_sequence": None},
            "usage": anthropic_usage(charged),
        }
        events += [_event("message_delta", delta), _event("message_stop", {"type": "message_stop"})]
        return b"".join(events)

    def failed(self, error: ApiError) -> bytes:
        """The `error` event that ends a stream cut midway (never a clean message_stop)."""
        return _event("error", anthropic_error_body(error))


class AnthropicRawRenderer:
    """Writes an untranslated Messages stream's events as the upstream sent them (thinking blocks,
    signatures, stop_sequence and cache usage included); the upstream's message_delta and message_stop
    close it, and a cut stream ends with an `error` event, as with `AnthropicStreamRenderer`."""

    def opened(self, *, model_id: str) -> bytes:
        del model_id  # message_start names the model as the upstream reports it.
        return b""

    def chunk(self, chunk: ChatCompletionChunk) -> bytes:
        raise AssertionError("an untranslated stream is rendered from its raw events")

    def raw(self, event: Mapping[str, Any]) -> bytes:
        return _event(str(event["type"]), dict(event))

    def finished(self, *, reported: TokenUsage | None, charged: TokenUsage) -> bytes:
        del reported, charged  # The upstream's own message_delta carried its usage, already written.
        return b""

    def failed(self, error: ApiError) -> bytes:
        return _event("error", anthropic_error_body(error))
