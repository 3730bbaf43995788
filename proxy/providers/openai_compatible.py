"""Adapter for OpenAI and OpenAI-compatible upstreams (`POST {base_url}/chat/completions`, `/embeddings`).

The request goes out nearly as the caller sent it (unknown fields included); only `model` is replaced and,
for streams, `stream_options.include_usage` is forced on so that we can charge reported usage. Usage is
taken out of the chunks and handed over as the final StreamEvent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pydantic

from proxy.openai_types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Usage,
)
from proxy.providers.base import (
    ApiKind,
    ChatResult,
    EmbeddingsResult,
    ProviderAdapter,
    StreamEvent,
    TokenUsage,
)
from proxy.providers.errors import UpstreamError
from proxy.providers.tokens import estimate_prompt_tokens, estimate_text_tokens
from proxy.providers.transport import (
    TRANSPORT_ERRORS,
    decode_json_object,
    error_for_status,
    iter_sse,
    open_response,
    upstream_error_for_exception,
)

__all__ = ["OpenAICompatibleAdapter", "decode_openai_error", "token_usage_from_openai"]


def token_usage_from_openai(usage: Usage) -> TokenUsage:
    """OpenAI already counts cached tokens inside prompt_tokens and reasoning inside completion_tokens."""
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    details = usage.completion_tokens_details
    reasoning = (details.reasoning_tokens or 0) if details else 0
    return TokenUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        # Some compatible servers report parts larger than the totals; trust the totals, they are billed.
        cached_input_tokens=min(cached, usage.prompt_tokens),
        reasoning_tokens=min(reasoning, usage.completion_tokens),
    )


def decode_openai_error(status: int, headers: Mapping[str, str], text: str) -> UpstreamError:
    """`{"error": {"message", "type", "param", "code"}}`; tolerant of bodies that are not that."""
    message, code = text[:500], None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or message)
        raw_code = error.get("code") or error.get("type")
        code = str(raw_code) if raw_code is not None else None
    return error_for_status(status, message=message, headers=headers, provider_code=code)


class OpenAICompatibleAdapter(ProviderAdapter):
    api_kind: ClassVar[ApiKind] = "openai"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        headers.update(self.endpoint.extra_headers)
        return headers

    def _chat_body(self, request: ChatCompletionRequest, *, stream: bool) -> dict[str, Any]:
        body = request.model_dump(mode="json", exclude_none=True, by_alias=True)
        body["model"] = self.upstream_model
        body["stream"] = stream
        if stream:
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        else:
            body.pop("stream_options", None)
        return body

    async def chat(self, request: ChatCompletionRequest) -> ChatResult:
        url = f"{self.endpoint.root_url}/chat/completions"
        try:
            async with asyncio.timeout(self.timeout_s):
                async with open_response(
                    self.session,
                    url,
                    body=self._chat_body(request, stream=False),
                    headers=self._headers(),
                    timeout_s=self.timeout_s,
                    decode_error=decode_openai_error,
                ) as response:
                    text = await response.text()
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=False) from error
        try:
            completion = ChatCompletion.model_validate(decode_json_object(text))
        except pydantic.ValidationError as error:
            raise UpstreamError("invalid_response", f"not a chat completion: {error}") from error
        if not completion.choices:
            raise UpstreamError("invalid_response", "chat completion without choices")
        if completion.usage is not None:
            usage = token_usage_from_openai(completion.usage)
        else:
            message = completion.choices[0].message
            output = estimate_text_tokens(message.content or "") + sum(
                estimate_text_tokens(call.function.arguments) for call in message.tool_calls or []
            )
            usage = TokenUsage(
                input_tokens=estimate_prompt_tokens(request), output_tokens=output, estimated=True
            )
        return ChatResult(response=completion, usage=usage)

    async def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[StreamEvent]:
        url = f"{self.endpoint.root_url}/chat/completions"
        reported: Usage | None = None
        output_chars = 0
        finished = done = False
        try:
            async with open_response(
                self.session,
                url,
                body=self._chat_body(request, stream=True),
                headers={**self._headers(), "Accept": "text/event-stream"},
                timeout_s=self.timeout_s,
                decode_error=decode_openai_error,
            ) as response:
                async for event in iter_sse(
                    response.content, first_s=self.timeout_s, idle_s=self.stream_idle_s
                ):
                    if event.data.strip() == "[DONE]":
                        done = True
                        break
                    chunk = _parse_chunk(event.data)
                    if chunk.usage is not None:
                        reported = chunk.usage
                        chunk = chunk.model_copy(update={"usage": None})
                    if not chunk.choices:
                        continue
                    for choice in chunk.choices:
                        output_chars += len(choice.delta.content or "")
                        for call in choice.delta.tool_calls or []:
                            output_chars += len(call.function.arguments or "") if call.function else 0
                        finished = finished or choice.finish_reason is not None
                    yield StreamEvent(chunk=chunk)
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=True) from error
        if not (done or finished):
            raise UpstreamError("stream_interrupted", "stream ended before its finish_reason")
        if reported is not None:
            yield StreamEvent(usage=token_usage_from_openai(reported))
        else:
            output_tokens = -(-output_chars // 4)
            estimate = TokenUsage(
                input_tokens=estimate_prompt_tokens(request), output_tokens=output_tokens, estimated=True
            )
            yield StreamEvent(usage=estimate)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        url = f"{self.endpoint.root_url}/embeddings"
        body = request.model_dump(mode="json", exclude_none=True)
        body["model"] = self.upstream_model
        try:
            async with asyncio.timeout(self.timeout_s):
                async with open_response(
                    self.session,
                    url,
                    body=body,
                    headers=self._headers(),
                    timeout_s=self.timeout_s,
                    decode_error=decode_openai_error,
                ) as response:
                    text = await response.text()
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=False) from error
        try:
            parsed = EmbeddingsResponse.model_validate(decode_json_object(text))
        except pydantic.ValidationError as error:
            raise UpstreamError("invalid_response", f"not an embeddings response: {error}") from error
        usage = TokenUsage(input_tokens=parsed.usage.prompt_tokens, output_tokens=0)
        return EmbeddingsResult(response=parsed, usage=usage)


def _parse_chunk(data: str) -> ChatCompletionChunk:
    # The common case parses and validates in one pass (pydantic-core's parser); anything that fails it,
    # an in-stream error event included, is read again the slow way to say what it is.
    try:
        return ChatCompletionChunk.model_validate_json(data)
    except pydantic.ValidationError:
        pass
    body = decode_json_object(data)
    if "error" in body and "choices" not in body:
        # Some compatible servers (OpenRouter, vLLM) report a failure inside the stream this way.
        error = body["error"] if isinstance(body["error"], dict) else {"message": str(body["error"])}
        raise UpstreamError("server_error", str(error.get("message", "error event in stream")))
    try:
        return ChatCompletionChunk.model_validate(body)
    except pydantic.ValidationError as error:
        raise UpstreamError("invalid_response", f"not a chat completion chunk: {error}") from error
