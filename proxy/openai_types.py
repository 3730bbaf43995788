"""Pydantic models of the OpenAI wire format that MegaRouter speaks to callers and to OpenAI-style upstreams.

Owns: chat completions (request, response, stream chunk, usage), embeddings (request, response) and the error
body. These are the edge models: a request is parsed once here, adapters translate from and to them.
Request models keep unknown fields (`extra="allow"`), because OpenAI adds parameters faster than we do and an
OpenAI-compatible upstream should receive what the caller sent. Must not import aiohttp or anything in proxy/.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "EMBEDDING_DIMENSIONS_MAX",
    "EMBEDDING_INPUTS_MAX",
    "TOKENS_REQUESTED_MAX",
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "Embedding",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "EmbeddingsUsage",
    "ErrorBody",
    "ErrorDetail",
    "FinishReason",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "ImageContentPart",
    "ImageUrl",
    "JsonSchemaFormat",
    "NamedToolChoice",
    "NamedToolChoiceFunction",
    "OtherContentPart",
    "PromptTokensDetails",
    "ResponseFormat",
    "StreamOptions",
    "TextContentPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
    "message_text",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]

# Request numbers are typed as strictly as OpenAI types them (an int is not "10" or true, a bool is not
# "yes") and bounded, so nothing unbounded reaches a quote, an upstream or a simulator.
# Above every catalog model's context window: the plan then caps max_tokens at the model's own maximum.
TOKENS_REQUESTED_MAX = 10_000_000
SEED_MIN = -(2**63)
SEED_MAX = 2**63 - 1
# OpenAI's own limits on one embeddings request; no catalog model embeds into more dimensions than this.
EMBEDDING_DIMENSIONS_MAX = 8192
EMBEDDING_INPUTS_MAX = 2048
TOKEN_ID_MAX = 2**31 - 1
StrictBool = Annotated[bool, Field(strict=True)]
TokenId = Annotated[int, Field(strict=True, ge=0, le=TOKEN_ID_MAX)]


class _Open(BaseModel):
    """Keeps unknown fields: they pass through to OpenAI-compatible upstreams untouched."""

    model_config = ConfigDict(extra="allow")


# --- request -------------------------------------------------------------------------------------------


class TextContentPart(_Open):
    type: Literal["text"]
    text: str


class ImageUrl(_Open):
    url: str  # https URL or a data: URL with base64 bytes.
    detail: Literal["auto", "low", "high"] | None = None


class ImageContentPart(_Open):
    type: Literal["image_url"]
    image_url: ImageUrl


class OtherContentPart(_Open):
    """input_audio, file, refusal…: kept as sent; adapters that cannot translate one reject the request."""

    type: str


ContentPart = TextContentPart | ImageContentPart | OtherContentPart


class FunctionCall(_Open):
    name: str
    arguments: str  # JSON text, exactly as the model produced it (it may not even be valid JSON).


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # role=assistant
    tool_call_id: str | None = None  # role=tool


class FunctionDefinition(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema
    strict: StrictBool | None = None


class ToolDefinition(_Open):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedToolChoiceFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: NamedToolChoiceFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(_Open):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Open):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, strict=True, ge=0, le=2)
    top_p: float | None = Field(default=None, strict=True, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, strict=True, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, strict=True, ge=-2, le=2)
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(default=None, strict=True, ge=0, le=20)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    max_tokens: int | None = Field(default=None, strict=True, ge=1, le=TOKENS_REQUESTED_MAX)
    max_completion_tokens: int | None = Field(default=None, strict=True, ge=1, le=TOKENS_REQUESTED_MAX)
    seed: int | None = Field(default=None, strict=True, ge=SEED_MIN, le=SEED_MAX)
    user: str | None = None
    n: int | None = Field(default=None, strict=True)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, value: int | None) -> int | None:
        # Several choices multiply the cost by n and most non-OpenAI upstreams cannot produce them.
        if value is not None and value != 1:
            raise ValueError("only n=1 is supported")
        return value

    @property
    def output_tokens_max(self) -> int | None:
        """The caller's output cap: max_completion_tokens wins over the deprecated max_tokens."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def message_text(message: ChatMessage) -> str:
    """The text parts of a message joined by newlines; images and other parts contribute nothing."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content if isinstance(part, TextContentPart))


# --- response ------------------------------------------------------------------------------------------


class PromptTokensDetails(_Open):
    cached_tokens: int | None = None
    audio_tokens: int | None = None


class CompletionTokensDetails(_Open):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(_Open):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Open):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason | None = None
    logprobs: Any = None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class FunctionCallDelta(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Open):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class ChoiceDelta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Open):
    index: int = 0
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: Any = None


class ChatCompletionChunk(_Open):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- embeddings ----------------------------------------------------------------------------------------


class EmbeddingsRequest(_Open):
    model: str
    input: (
        str
        | Annotated[list[str], Field(max_length=EMBEDDING_INPUTS_MAX)]
        | Annotated[list[TokenId], Field(max_length=EMBEDDING_INPUTS_MAX)]
        | Annotated[list[list[TokenId]], Field(max_length=EMBEDDING_INPUTS_MAX)]
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, strict=True, ge=1, le=EMBEDDING_DIMENSIONS_MAX)
    user: str | None = None


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str when encoding_format=base64 (little-endian float32).


class EmbeddingsUsage(_Open):
    prompt_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class EmbeddingsResponse(_Open):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage


# --- errors --------------------------------------------------------------------------------------------


class ErrorDetail(_Open):
    message: str
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(_Open):
    """`{"error": {"message", "type", "param", "code"}}`, as OpenAI and MegaRouter answer errors."""

    error: ErrorDetail
