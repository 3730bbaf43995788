"""Adapter for Anthropic's Messages API (`POST {base_url}/v1/messages`, JSON and SSE).

Translation, OpenAI → Anthropic: system and developer messages become `system`; image parts become image
blocks (base64 from data: URLs, else url sources); assistant tool_calls become tool_use blocks; tool
messages become tool_result blocks in a user turn (consecutive same-role turns are merged, as Anthropic
requires alternation); `max_tokens` is required there, so a default is sent when the caller set none;
temperature is clamped to Anthropic's 0..1. Back: text blocks join into `content`, tool_use blocks become
`tool_calls`, thinking blocks are dropped (their tokens stay in output_tokens). Usage: Anthropic's
input_tokens exclude cache reads and writes; TokenUsage.input_tokens includes them. A Messages request
from a Messages caller passes through untranslated (`messages_raw`, `messages_raw_stream`): only the model
is replaced, so thinking, cache_control and fields unknown to us survive both ways.

Structured output: a `json_schema` response_format becomes a forced tool, `json_response`, whose
input_schema is the caller's schema, because forced tool use constrains the reply on every Claude model
(output_config.format only on recent ones). Anthropic requires an object at a tool input's root, so any
other schema is wrapped as `{"value": schema}` (its `$defs` hoisted to the new root) and unwrapped on the
way back. That tool's input comes back as the assistant `content` (compact JSON; streamed as the model's
input_json_delta text), never as `tool_calls`, and its `tool_use` stop is finish_reason "stop". A
json_schema response_format together with the caller's own `tools` is refused (UnsupportedRequest, a 400):
with both, the reply could be either a tool call or the answer, so neither would be guaranteed.
`json_object`, or a json_schema without a schema, asks for JSON in the system prompt only.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
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
    "JSON_RESPONSE_TOOL_NAME",
    "AnthropicAdapter",
    "AnthropicStreamTranslator",
    "JsonResponseTool",
    "anthropic_request",
    "chat_completion_from_anthropic",
    "decode_anthropic_error",
    "json_response_tool",
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
JSON_RESPONSE_TOOL_NAME = "json_response"
JSON_RESPONSE_TOOL_DESCRIPTION = (
    "Returns the final answer. Call it exactly once, with the complete answer as its input, "
    "and write nothing else."
)
JSON_INSTRUCTION = "Respond with a single JSON value and nothing else."
# How a wrapped schema's reply starts, when a cut-off reply cannot be parsed and is unwrapped as text.
WRAPPED_PREFIX = re.compile(r'\s*\{\s*"value"\s*:\s*')
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


@dataclass(frozen=True)
class JsonResponseTool:
    """A json_schema response_format as the forced tool that carries it; `wrapped` when the caller's
    schema is not an object schema and sits under the `value` property of the tool's input."""

    input_schema: dict[str, Any]
    wrapped: bool

    def definition(self) -> dict[str, Any]:
        return {
            "name": JSON_RESPONSE_TOOL_NAME,
            "description": JSON_RESPONSE_TOOL_DESCRIPTION,
            "input_schema": self.input_schema,
        }

    def content_from_input(self, tool_input: Any) -> str:
        """The assistant content for the tool's input: the caller's JSON value, compact."""
        if not self.wrapped:
            return _compact_json(tool_input)
        # A reply cut off by max_tokens may lack `value`; there is then no answer to give.
        if isinstance(tool_input, dict) and "value" in tool_input:
            return _compact_json(tool_input["value"])
        return ""

    def content_from_text(self, input_json: str) -> str:
        """The assistant content for the tool input's streamed JSON text (wrapped schemas only)."""
        assert self.wrapped
        try:
            return self.content_from_input(loads_bounded_json(input_json))
        except ValueError:
            # Cut off mid-value: give what was written of the value, as a non-wrapped reply would.
            match = WRAPPED_PREFIX.match(input_json)
            return input_json[match.end() :] if match else ""


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def json_response_tool(request: ChatCompletionRequest) -> JsonResponseTool | None:
    """The forced tool for a json_schema response_format, or None when the request has no schema."""
    response_format = request.response_format
    if response_format is None or response_format.type != "json_schema":
        return None
    if response_format.json_schema is None or response_format.json_schema.schema_ is None:
        return None
    if request.tools:
        raise UnsupportedRequest(
            "response_format json_schema together with tools cannot be sent to Anthropic models: "
            "send one or the other"
        )
    schema = dict(response_format.json_schema.schema_)
    if schema.get("type") == "object":
        return JsonResponseTool(input_schema=schema, wrapped=False)
    # References such as "#/$defs/Item" are resolved against the root, so definitions move up with it.
    definitions: dict[str, Any] = {key: schema.pop(key) for key in ("$defs", "definitions") if key in schema}
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
        **definitions,
    }
    return JsonResponseTool(input_schema=wrapper, wrapped=True)


def anthropic_request(request: ChatCompletionRequest, *, upstream_model: str, stream: bool) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request."""
    system, turns = _messages(request)
    json_tool = json_response_tool(request)
    if json_tool is None and request.response_format is not None and request.response_format.type != "text":
        system.append(JSON_INSTRUCTION)
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
    if json_tool is not None:
        body["tools"] = [json_tool.definition()]
        body["tool_choice"] = {"type": "tool", "name": JSON_RESPONSE_TOOL_NAME}
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


def _finish_reason(stop_reason: str | None, json_tool: JsonResponseTool | None) -> FinishReason:
    if json_tool is not None and stop_reason == "tool_use":
        return "stop"  # The forced json_response tool is the answer, not a call for the caller to make.
    return STOP_REASONS.get(stop_reason or "", "stop")


def chat_completion_from_anthropic(
    body: Mapping[str, Any], *, json_tool: JsonResponseTool | None = None
) -> ChatResult:
    """An OpenAI chat completion (and usage) from a Messages API response body; `json_tool` is the tool
    the request forced for a json_schema response_format, whose input becomes the content."""
    try:
        texts = [block["text"] for block in body["content"] if block.get("type") == "text"]
        answers = [
            json_tool.content_from_input(block["input"])
            for block in body["content"]
            if json_tool is not None
            and block.get("type") == "tool_use"
            and block.get("name") == JSON_RESPONSE_TOOL_NAME
        ]
        if answers:
            # Text beside the answer (a preamble) would make the content unparseable as the schema.
            texts = answers[:1]
        calls = [
            ToolCall(
                id=block["id"],
                function=FunctionCall(name=block["name"], arguments=json.dumps(block["input"])),
            )
            for block in body["content"]
            if block.get("type") == "tool_use" and not answers
        ]
        usage = token_usage_from_anthropic(body["usage"])
        message = AssistantMessage(content="".join(texts) if texts else None, tool_calls=calls or None)
        completion = ChatCompletion(
            id=str(body["id"]),
            created=int(time.time()),
            model=str(body["model"]),
            choices=[
                Choice(message=message, finish_reason=_finish_reason(body.get("stop_reason"), json_tool))
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
        json_tool = json_response_tool(request)
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
        return chat_completion_from_anthropic(decode_json_object(text), json_tool=json_tool)

    def _raw_body(self, body: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        """The caller's Messages body as sent, with this deployment's model and the stream flag."""
        assert isinstance(body.get("max_tokens"), int)
        raw = {**body, "model": self.upstream_model}
        raw.pop("stream", None)
        return {**raw, "stream": True} if stream else raw

    async def messages_raw(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], TokenUsage]:
        """A Messages request passed through untranslated: the upstream's Message as it came, and its
        usage. `body` is a Messages API body whose `max_tokens` the caller already capped."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with open_response(
                    self.session,
                    f"{self.endpoint.root_url}/v1/messages",
                    body=self._raw_body(body, stream=False),
                    headers=self._headers(stream=False),
                    timeout_s=self.timeout_s,
                    decode_error=decode_anthropic_error,
                ) as response:
                    text = await response.text()
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=False) from error
        message = decode_json_object(text)
        # Validated as the translation would (content blocks, usage), so a malformed reply fails over.
        result = chat_completion_from_anthropic(message)
        return message, result.usage

    async def messages_raw_stream(self, body: Mapping[str, Any]) -> AsyncIterator[StreamEvent]:
        """The upstream's stream events as they come (`raw`, with their translation as `chunk` when they
        have one), then the usage of message_start and message_delta. Raises UpstreamError, also midway."""
        translator = AnthropicStreamTranslator()
        try:
            async with open_response(
                self.session,
                f"{self.endpoint.root_url}/v1/messages",
                body=self._raw_body(body, stream=True),
                headers=self._headers(stream=True),
                timeout_s=self.timeout_s,
                decode_error=decode_anthropic_error,
            ) as response:
                async for event in iter_sse(
                    response.content, first_s=self.timeout_s, idle_s=self.stream_idle_s
                ):
                    data = decode_json_object(event.data)
                    chunks = translator.feed(data)  # Raises on an error event: never passed as data.
                    assert len(chunks) <= 1, "one Messages event translates to one chunk at most"
                    yield StreamEvent(raw=data, chunk=chunks[0] if chunks else None)
                    if translator.stopped:
                        break
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=True) from error
        yield StreamEvent(usage=translator.usage())

    async def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[StreamEvent]:
        body = anthropic_request(request, upstream_model=self.upstream_model, stream=True)
        translator = AnthropicStreamTranslator(json_tool=json_response_tool(request))
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
    against recorded streams). Raises UpstreamError on an `error` event. With `json_tool`, that tool's
    input is streamed as content: as it arrives for an object schema, at its block's end when wrapped."""

    def __init__(self, *, json_tool: JsonResponseTool | None = None) -> None:
        self.message_id = ""
        self.model = ""
        self.created = int(time.time())
        self.stopped = False
        self._usage: dict[str, Any] = {}
        self._tool_index_by_block: dict[int, int] = {}
        self._json_tool = json_tool
        self._json_block_index: int | None = None
        self._wrapped_json_parts: list[str] = []

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
            if kind == "content_block_stop":
                return self._block_stop(int(event["index"]))
            if kind == "message_delta":
                self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
                reason = (event.get("delta") or {}).get("stop_reason")
                if reason is None:
                    return []
                return [self._chunk(ChoiceDelta(), _finish_reason(reason, self._json_tool))]
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
        return []  # ping, and event types added after this adapter was written.

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if self._is_json_answer(block):
            self._json_block_index = index
            return []
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

    def _is_json_answer(self, block: Mapping[str, Any]) -> bool:
        return (
            self._json_tool is not None
            and self._json_block_index is None
            and block.get("type") == "tool_use"
            and block.get("name") == JSON_RESPONSE_TOOL_NAME
        )

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if index == self._json_block_index and delta.get("type") == "input_json_delta":
            assert self._json_tool is not None
            if self._json_tool.wrapped:
                self._wrapped_json_parts.append(str(delta["partial_json"]))
                return []
            return [self._chunk(ChoiceDelta(content=str(delta["partial_json"])))]
        if delta.get("type") == "text_delta":
            return [self._chunk(ChoiceDelta(content=str(delta["text"])))]
        if delta.get("type") == "input_json_delta":
            call = ToolCallDelta(
                index=self._tool_index_by_block[index],
                function=FunctionCallDelta(arguments=str(delta["partial_json"])),
            )
            return [self._chunk(ChoiceDelta(tool_calls=[call]))]
        return []  # thinking_delta, signature_delta, citations_delta: not part of the OpenAI chunk.

    def _block_stop(self, index: int) -> list[ChatCompletionChunk]:
        if index != self._json_block_index or self._json_tool is None or not self._json_tool.wrapped:
            return []
        content = self._json_tool.content_from_text("".join(self._wrapped_json_parts))
        return [self._chunk(ChoiceDelta(content=content))] if content else []

    def usage(self) -> TokenUsage:
        if not self.stopped:
            raise UpstreamError("stream_interrupted", "Messages stream ended before message_stop")
        return token_usage_from_anthropic(self._usage)
