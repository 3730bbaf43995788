"""Adapter for Anthropic's Messages API (`POST {base_url}/v1/messages`, JSON and SSE).

Translation, OpenAI → Anthropic: system and developer messages become `system`; image parts become image
blocks (base64 from data: URLs, else url sources); assistant tool_calls become tool_use blocks; tool
messages become tool_result blocks in a user turn (consecutive same-role turns are merged, as Anthropic
requires alternation); `max_tokens` is required there, so a default is sent when the caller set none;
temperature is clamped to Anthropic's 0..1. Back: text blocks join into `content`, tool_use blocks become
`tool_calls`, thinking blocks are dropped (their tokens stay in output_tokens). Usage: Anthropic's
input_tokens exclude cache reads and writes; TokenUsage.input_tokens includes them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from proxy.json_bounds import loads_bounded_json
from proxy.openai_types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    FinishReason,
    FunctionCall,
    FunctionCallDelta,
    ImageContentPart,
    NamedToolChoice,
    TextContentPart,
    ToolCall,
    ToolCallDelta,
    message_text,
)
from proxy.providers.base import ApiKind, ChatResult, ProviderAdapter, StreamEvent, TokenUsage
from proxy.providers.errors import UnsupportedRequest, UpstreamError, UpstreamErrorKind
from proxy.providers.transport import (
    TRANSPORT_ERRORS,
    decode_json_object,
    error_for_status,
    iter_sse,
    open_response,
    upstream_error_for_exception,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicAdapter",
    "anthropic_request",
    "chat_completion_from_anthropic",
    "decode_anthropic_error",
    "token_usage_from_anthropic",
]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STREAM_ERROR_KINDS: dict[str, UpstreamErrorKind] = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limited",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "invalid_request_error": "bad_request",
    "authentication_error": "auth",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "payload_too_large",
}


def _image_block(part: ImageContentPart) -> dict[str, Any]:
    url = part.image_url.url
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";")[0]
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}]
    blocks: list[dict[str, Any]] = []
    for part in message.content or []:
        if isinstance(part, TextContentPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImageContentPart):
            blocks.append(_image_block(part))
        else:
            raise UnsupportedRequest(f"content part {part.type!r} cannot be sent to Anthropic")
    return blocks


def _assistant_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    text = message_text(message)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in message.tool_calls or []:
        try:
            arguments = loads_bounded_json(call.function.arguments or "{}")
        except ValueError as error:
            raise UnsupportedRequest(f"tool call {call.id} has arguments that are not JSON") from error
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments})
    return blocks


def _messages(request: ChatCompletionRequest) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(message_text(message))
            continue
        if message.role == "tool":
            role = "user"
            blocks = [
                {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message_text(message)}
            ]
        elif message.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message)
        else:
            role, blocks = "user", _user_blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_choice(request: ChatCompletionRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    result: dict[str, Any] | None
    if isinstance(choice, NamedToolChoice):
        result = {"type": "tool", "name": choice.function.name}
    elif choice is None:
        result = None if request.parallel_tool_calls is not False else {"type": "auto"}
    else:
        result = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    if result is not None and request.parallel_tool_calls is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def anthropic_request(request: ChatCompletionRequest, *, upstream_model: str, stream: bool) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request."""
    system, turns = _messages(request)
    if request.response_format is not None and request.response_format.type != "text":
        system.append("Respond with a single JSON value and nothing else.")
    body: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": request.output_tokens_max or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop_sequences:
        body["stop_sequences"] = request.stop_sequences
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [
            {
                "name": tool.function.name,
                **({"description": tool.function.description} if tool.function.description else {}),
                "input_schema": tool.function.parameters or {"type": "object", "properties": {}},
            }
            for tool in request.tools
        ]
    tool_choice = _tool_choice(request)
    if tool_choice is not None and request.tools:
        body["tool_choice"] = tool_choice
    if stream:
        body["stream"] = True
    return body


def token_usage_from_anthropic(usage: Mapping[str, Any]) -> TokenUsage:
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    return TokenUsage(
        input_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
    )


def chat_completion_from_anthropic(body: Mapping[str, Any]) -> ChatResult:
    """An OpenAI chat completion (and usage) from a Messages API response body."""
    try:
        texts = [block["text"] for block in body["content"] if block.get("type") == "text"]
        calls = [
            ToolCall(
                id=block["id"],
                function=FunctionCall(name=block["name"], arguments=json.dumps(block["input"])),
            )
            for block in body["content"]
            if block.get("type") == "tool_use"
        ]
        usage = token_usage_from_anthropic(body["usage"])
        message = AssistantMessage(content="".join(texts) if texts else None, tool_calls=calls or None)
        completion = ChatCompletion(
            id=str(body["id"]),
            created=int(time.time()),
            model=str(body["model"]),
            choices=[
                Choice(message=message, finish_reason=STOP_REASONS.get(body.get("stop_reason") or "", "stop"))
            ],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UpstreamError("invalid_response", f"not a Messages API response: {error!r}") from error
    return ChatResult(response=completion, usage=usage)


def decode_anthropic_error(status: int, headers: Mapping[str, str], text: str) -> UpstreamError:
    """`{"type": "error", "error": {"type", "message"}}`."""
    message, code = text[:500], None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or message)
        code = str(body["error"].get("type") or "") or None
    return error_for_status(status, message=message, headers=headers, provider_code=code)


class AnthropicAdapter(ProviderAdapter):
    api_kind: ClassVar[ApiKind] = "anthropic"

    def _headers(self, *, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            "x-api-key": self.endpoint.api_key,
        }
        headers.update(self.endpoint.extra_headers)
        return headers

    async def chat(self, request: ChatCompletionRequest) -> ChatResult:
        body = anthropic_request(request, upstream_model=self.upstream_model, stream=False)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with open_response(
                    self.session,
                    f"{self.endpoint.root_url}/v1/messages",
                    body=body,
                    headers=self._headers(stream=False),
                    timeout_s=self.timeout_s,
                    decode_error=decode_anthropic_error,
                ) as response:
                    text = await response.text()
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=False) from error
        return chat_completion_from_anthropic(decode_json_object(text))

    async def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[StreamEvent]:
        body = anthropic_request(request, upstream_model=self.upstream_model, stream=True)
        translator = AnthropicStreamTranslator()
        try:
            async with open_response(
                self.session,
                f"{self.endpoint.root_url}/v1/messages",
                body=body,
                headers=self._headers(stream=True),
                timeout_s=self.timeout_s,
                decode_error=decode_anthropic_error,
            ) as response:
                async for event in iter_sse(
                    response.content, first_s=self.timeout_s, idle_s=self.stream_idle_s
                ):
                    for chunk in translator.feed(decode_json_object(event.data)):
                        yield StreamEvent(chunk=chunk)
                    if translator.stopped:
                        break
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=True) from error
        yield StreamEvent(usage=translator.usage())


class AnthropicStreamTranslator:
    """Turns Messages API stream events into OpenAI chunks, one event at a time (pure, so it is testable
    against recorded streams). Raises UpstreamError on an `error` event."""

    def __init__(self) -> None:
        self.message_id = ""
        self.model = ""
        self.created = int(time.time())
        self.stopped = False
        self._usage: dict[str, Any] = {}
        self._tool_index_by_block: dict[int, int] = {}

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish)
        return ChatCompletionChunk(
            id=self.message_id, created=self.created, model=self.model, choices=[choice]
        )

    def feed(self, event: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        kind = event.get("type")
        try:
            if kind == "message_start":
                message = event["message"]
                self.message_id, self.model = str(message["id"]), str(message["model"])
                self._usage.update(message.get("usage") or {})
                return [self._chunk(ChoiceDelta(role="assistant", content=""))]
            if kind == "content_block_start":
                return self._block_start(int(event["index"]), event["content_block"])
            if kind == "content_block_delta":
                return self._block_delta(int(event["index"]), event["delta"])
            if kind == "message_delta":
                self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
                reason = (event.get("delta") or {}).get("stop_reason")
                if reason is None:
                    return []
                return [self._chunk(ChoiceDelta(), STOP_REASONS.get(reason, "stop"))]
            if kind == "message_stop":
                self.stopped = True
                return []
            if kind == "error":
                error = event.get("error") or {}
                error_type = str(error.get("type") or "api_error")
                message = str(error.get("message") or "error event in stream")
                raise UpstreamError(
                    STREAM_ERROR_KINDS.get(error_type, "server_error"), message, provider_code=error_type
                )
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamError("invalid_response", f"bad Messages stream event: {error!r}") from error
        return []  # ping, content_block_stop, and event types added after this adapter was written.

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if block.get("type") == "tool_use":
            tool_index = len(self._tool_index_by_block)
            self._tool_index_by_block[index] = tool_index
            call = ToolCallDelta(
                index=tool_index,
                id=str(block["id"]),
                type="function",
                function=FunctionCallDelta(name=str(block["name"]), arguments=""),
            )
            return [self._chunk(ChoiceDelta(tool_calls=[call]))]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk(ChoiceDelta(content=str(block["text"])))]
        return []

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if delta.get("type") == "text_delta":
            return [self._chunk(ChoiceDelta(content=str(delta["text"])))]
        if delta.get("type") == "input_json_delta":
            call = ToolCallDelta(
                index=self._tool_index_by_block[index],
                function=FunctionCallDelta(arguments=str(delta["partial_json"])),
            )
            return [self._chunk(ChoiceDelta(tool_calls=[call]))]
        return []  # thinking_delta, signature_delta, citations_delta: not part of the OpenAI chunk.

    def usage(self) -> TokenUsage:
        if not self.stopped:
            raise UpstreamError("stream_interrupted", "Messages stream ended before message_stop")
        return token_usage_from_anthropic(self._usage)
