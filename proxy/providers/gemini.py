"""Adapter for Google's Gemini API (`POST {base_url}/v1beta/models/{model}:generateContent`, and
`:streamGenerateContent?alt=sse`), authenticated with `x-goog-api-key`.

Translation, OpenAI → Gemini: system and developer messages become `systemInstruction`; roles become
user/model; text, images (inlineData from data: URLs, fileData otherwise), tool calls (functionCall)
and tool results (functionResponse, named after the call they answer) become parts; sampling options go
into `generationConfig`; tool_choice becomes `toolConfig.functionCallingConfig`. Back: text parts join
(thought parts are dropped), functionCall parts become tool_calls. Usage: promptTokenCount already
includes cachedContentTokenCount; candidatesTokenCount excludes thoughtsTokenCount, which we add to
output_tokens (thoughts are billed as output).
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
from proxy.providers.errors import UnsupportedRequest, UpstreamError
from proxy.providers.transport import (
    TRANSPORT_ERRORS,
    decode_json_object,
    error_for_status,
    iter_sse,
    open_response,
    upstream_error_for_exception,
)

__all__ = [
    "GeminiAdapter",
    "GeminiStreamTranslator",
    "chat_completion_from_gemini",
    "decode_gemini_error",
    "gemini_request",
    "token_usage_from_gemini",
]

API_VERSION = "v1beta"
CONTENT_FILTER_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
)


def _user_parts(message: ChatMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}]
    parts: list[dict[str, Any]] = []
    for part in message.content or []:
        if isinstance(part, TextContentPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImageContentPart):
            url = part.image_url.url
            if url.startswith("data:"):
                header, _, data = url.partition(",")
                parts.append(
                    {"inlineData": {"mimeType": header.removeprefix("data:").split(";")[0], "data": data}}
                )
            else:
                parts.append({"fileData": {"mimeType": "image/jpeg", "fileUri": url}})
        else:
            raise UnsupportedRequest(f"content part {part.type!r} cannot be sent to Gemini")
    return parts


def _tool_response(message: ChatMessage, names_by_call_id: Mapping[str, str]) -> dict[str, Any]:
    text = message_text(message)
    try:
        value = loads_bounded_json(text)
    except ValueError:  # Not JSON (or too deep to pass on as such): sent as text.
        value = None
    response = value if isinstance(value, dict) else {"result": text}
    name = names_by_call_id.get(message.tool_call_id or "")
    if name is None:
        raise UnsupportedRequest(f"tool message answers unknown tool call {message.tool_call_id!r}")
    return {"functionResponse": {"name": name, "response": response}}


def _contents(request: ChatCompletionRequest) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names_by_call_id: dict[str, str] = {}
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(message_text(message))
            continue
        if message.role == "assistant":
            role = "model"
            text = message_text(message)
            parts: list[dict[str, Any]] = [{"text": text}] if text else []
            for call in message.tool_calls or []:
                names_by_call_id[call.id] = call.function.name
                try:
                    args = loads_bounded_json(call.function.arguments or "{}")
                except ValueError as error:
                    raise UnsupportedRequest(
                        f"tool call {call.id} has arguments that are not JSON"
                    ) from error
                parts.append({"functionCall": {"name": call.function.name, "args": args}})
        elif message.role == "tool":
            role, parts = "user", [_tool_response(message, names_by_call_id)]
        else:
            role, parts = "user", _user_parts(message)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _generation_config(request: ChatCompletionRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.output_tokens_max is not None:
        config["maxOutputTokens"] = request.output_tokens_max
    if request.stop_sequences:
        config["stopSequences"] = request.stop_sequences
    if request.seed is not None:
        config["seed"] = request.seed
    if request.response_format is not None and request.response_format.type != "text":
        config["responseMimeType"] = "application/json"
        schema = request.response_format.json_schema
        if schema is not None and schema.schema_ is not None:
            config["responseJsonSchema"] = schema.schema_
    return config


def gemini_request(request: ChatCompletionRequest) -> dict[str, Any]:
    """The generateContent body for an OpenAI chat request (the model goes in the URL)."""
    system, contents = _contents(request)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    if request.tools:
        declarations = [
            {
                "name": tool.function.name,
                **({"description": tool.function.description} if tool.function.description else {}),
                **({"parameters": tool.function.parameters} if tool.function.parameters else {}),
            }
            for tool in request.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
        choice = request.tool_choice
        if isinstance(choice, NamedToolChoice):
            calling = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
            body["toolConfig"] = {"functionCallingConfig": calling}
        elif choice is not None:
            mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]
            body["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    return body


def token_usage_from_gemini(metadata: Mapping[str, Any]) -> TokenUsage:
    prompt = int(metadata.get("promptTokenCount") or 0) + int(metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    return TokenUsage(
        input_tokens=prompt,
        output_tokens=int(metadata.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=min(int(metadata.get("cachedContentTokenCount") or 0), prompt),
        reasoning_tokens=thoughts,
    )


def _finish_reason(reason: str | None, has_calls: bool) -> FinishReason | None:
    if reason is None or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in CONTENT_FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def _call_id(response_id: str, index: int, part: Mapping[str, Any]) -> str:
    given = part["functionCall"].get("id")
    return str(given) if given else f"call_{response_id[-12:]}_{index}"


def chat_completion_from_gemini(body: Mapping[str, Any]) -> ChatResult:
    try:
        response_id = str(body.get("responseId") or f"gemini-{time.time_ns()}")
        candidates = body.get("candidates") or []
        parts = ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []
        texts = [str(part["text"]) for part in parts if "text" in part and not part.get("thought")]
        calls = [
            ToolCall(
                id=_call_id(response_id, index, part),
                function=FunctionCall(
                    name=str(part["functionCall"]["name"]),
                    arguments=json.dumps(part["functionCall"].get("args") or {}),
                ),
            )
            for index, part in enumerate(p for p in parts if "functionCall" in p)
        ]
        reason = (
            candidates[0].get("finishReason") if candidates else "SAFETY"
        )  # No candidate: prompt blocked.
        message = AssistantMessage(content="".join(texts) if texts else None, tool_calls=calls or None)
        completion = ChatCompletion(
            id=response_id,
            created=int(time.time()),
            model=str(body.get("modelVersion") or ""),
            choices=[Choice(message=message, finish_reason=_finish_reason(reason, bool(calls)) or "stop")],
        )
        usage = token_usage_from_gemini(body.get("usageMetadata") or {})
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise UpstreamError("invalid_response", f"not a generateContent response: {error!r}") from error
    return ChatResult(response=completion, usage=usage)


def _retry_delay_s(details: Any) -> float | None:
    """google.rpc.RetryInfo's retryDelay ("37s" or "1.5s") from an error's details."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            try:
                return max(float(str(detail.get("retryDelay", "")).removesuffix("s")), 0.0)
            except ValueError:
                return None
    return None


def decode_gemini_error(status: int, headers: Mapping[str, str], text: str) -> UpstreamError:
    """`{"error": {"code", "message", "status", "details"}}` (a list of them on some endpoints)."""
    message, code, retry_after_s = text[:500], None, None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or message)
        code = str(error.get("status") or "") or None
        retry_after_s = _retry_delay_s(error.get("details"))
    return error_for_status(
        status, message=message, headers=headers, provider_code=code, retry_after_s=retry_after_s
    )


class GeminiAdapter(ProviderAdapter):
    api_kind: ClassVar[ApiKind] = "gemini"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "x-goog-api-key": self.endpoint.api_key}
        headers.update(self.endpoint.extra_headers)
        return headers

    def _url(self, action: str) -> str:
        return f"{self.endpoint.root_url}/{API_VERSION}/models/{self.upstream_model}:{action}"

    async def chat(self, request: ChatCompletionRequest) -> ChatResult:
        try:
            async with asyncio.timeout(self.timeout_s):
                async with open_response(
                    self.session,
                    self._url("generateContent"),
                    body=gemini_request(request),
                    headers=self._headers(),
                    timeout_s=self.timeout_s,
                    decode_error=decode_gemini_error,
                ) as response:
                    text = await response.text()
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=False) from error
        return chat_completion_from_gemini(decode_json_object(text))

    async def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[StreamEvent]:
        translator = GeminiStreamTranslator()
        try:
            async with open_response(
                self.session,
                self._url("streamGenerateContent") + "?alt=sse",
                body=gemini_request(request),
                headers={**self._headers(), "Accept": "text/event-stream"},
                timeout_s=self.timeout_s,
                decode_error=decode_gemini_error,
            ) as response:
                async for event in iter_sse(
                    response.content, first_s=self.timeout_s, idle_s=self.stream_idle_s
                ):
                    for chunk in translator.feed(decode_json_object(event.data)):
                        yield StreamEvent(chunk=chunk)
        except TRANSPORT_ERRORS as error:
            raise upstream_error_for_exception(error, streaming=True) from error
        yield StreamEvent(usage=translator.usage())


class GeminiStreamTranslator:
    """Turns streamGenerateContent SSE payloads (partial GenerateContentResponses) into OpenAI chunks."""

    def __init__(self) -> None:
        self.response_id = ""
        self.model = ""
        self.created = int(time.time())
        self.finished = False
        self._metadata: dict[str, Any] = {}
        self._calls = 0
        self._started = False

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish)
        return ChatCompletionChunk(
            id=self.response_id, created=self.created, model=self.model, choices=[choice]
        )

    def feed(self, body: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if isinstance(body.get("error"), dict):
            error = body["error"]
            raise UpstreamError(
                "server_error",
                str(error.get("message") or "error in stream"),
                provider_code=str(error.get("status") or ""),
            )
        try:
            self.response_id = self.response_id or str(body.get("responseId") or f"gemini-{time.time_ns()}")
            self.model = self.model or str(body.get("modelVersion") or "")
            self._metadata.update(body.get("usageMetadata") or {})
            chunks: list[ChatCompletionChunk] = []
            if not self._started:
                self._started = True
                chunks.append(self._chunk(ChoiceDelta(role="assistant", content="")))
            candidates = body.get("candidates") or []
            parts = ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []
            for part in parts:
                if "text" in part and not part.get("thought"):
                    chunks.append(self._chunk(ChoiceDelta(content=str(part["text"]))))
                elif "functionCall" in part:
                    call = ToolCallDelta(
                        index=self._calls,
                        id=_call_id(self.response_id, self._calls, part),
                        type="function",
                        function=FunctionCallDelta(
                            name=str(part["functionCall"]["name"]),
                            arguments=json.dumps(part["functionCall"].get("args") or {}),
                        ),
                    )
                    self._calls += 1
                    chunks.append(self._chunk(ChoiceDelta(tool_calls=[call])))
            reason = _finish_reason(
                candidates[0].get("finishReason") if candidates else None, self._calls > 0
            )
            if reason is not None:
                self.finished = True
                chunks.append(self._chunk(ChoiceDelta(), reason))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise UpstreamError(
                "invalid_response", f"bad streamGenerateContent payload: {error!r}"
            ) from error
        return chunks

    def usage(self) -> TokenUsage:
        if not self.finished:
            raise UpstreamError("stream_interrupted", "Gemini stream ended without a finishReason")
        return token_usage_from_gemini(self._metadata)
