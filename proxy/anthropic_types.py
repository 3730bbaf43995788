"""Pydantic models of Anthropic's Messages API as MegaRouter accepts it from callers (`POST /v1/messages`,
`POST /v1/messages/count_tokens`).

Owns the request side (system, messages and their content blocks, tools, tool_choice, sampling) and the
error body. Numbers are typed strictly and bounded as in proxy/openai_types.py. Unknown fields are kept
(`extra="allow"`) as Anthropic adds parameters often: they reach an Anthropic upstream when the request
passes through untranslated (proxy/serving/passthrough.py), and no other upstream (the request is then
translated through the internal OpenAI format, proxy/providers/anthropic_inbound.py). A content block type
this module does not know (document, search_result, server tool blocks) fails validation: a 400 that names
it, never a silent drop (nor a prompt the quote could not bound). Must not import aiohttp or anything in
proxy/.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "STOP_SEQUENCES_MAX",
    "AnthropicErrorBody",
    "AnthropicErrorDetail",
    "AnthropicErrorType",
    "AnthropicMessage",
    "AnthropicMetadata",
    "AnthropicTool",
    "AnthropicToolChoice",
    "AssistantContentBlock",
    "Base64ImageSource",
    "ContentBlock",
    "CountTokensRequest",
    "ImageBlock",
    "MessagesRequest",
    "RedactedThinkingBlock",
    "TextBlock",
    "ThinkingBlock",
    "ThinkingConfig",
    "ThinkingDisabled",
    "ThinkingEnabled",
    "ToolResultBlock",
    "ToolUseBlock",
    "UrlImageSource",
]

# As openai_types.TOKENS_REQUESTED_MAX (a sibling module, not imported): the plan caps it per model.
TOKENS_REQUESTED_MAX = 10_000_000
# The internal format carries at most 4 stop sequences (OpenAI's limit), so more is refused here.
STOP_SEQUENCES_MAX = 4
StrictBool = Annotated[bool, Field(strict=True)]
AnthropicErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(_Open):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class Base64ImageSource(_Open):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlImageSource(_Open):
    type: Literal["url"]
    url: str


class ImageBlock(_Open):
    type: Literal["image"]
    source: Annotated[Base64ImageSource | UrlImageSource, Field(discriminator="type")]
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = None
    is_error: StrictBool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]
AssistantContentBlock = ContentBlock


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class AnthropicTool(_Open):
    """A client tool. Server tools (web search, code execution) carry a `type` and are refused."""

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    cache_control: dict[str, Any] | None = None


class AnthropicToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None  # type=tool
    disable_parallel_tool_use: StrictBool | None = None


class AnthropicMetadata(_Open):
    user_id: str | None = Field(default=None, max_length=256)


class CountTokensRequest(_Open):
    model: str
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None


class ThinkingEnabled(_Open):
    """Extended thinking; its tokens are output tokens and count within `max_tokens`."""

    type: Literal["enabled"]
    budget_tokens: int = Field(strict=True, ge=1, le=TOKENS_REQUESTED_MAX)


class ThinkingDisabled(_Open):
    type: Literal["disabled"]


ThinkingConfig = Annotated[ThinkingEnabled | ThinkingDisabled, Field(discriminator="type")]


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(strict=True, ge=1, le=TOKENS_REQUESTED_MAX)
    temperature: float | None = Field(default=None, strict=True, ge=0, le=1)
    top_p: float | None = Field(default=None, strict=True, ge=0, le=1)
    top_k: int | None = Field(default=None, strict=True, ge=0, le=TOKENS_REQUESTED_MAX)
    stop_sequences: list[str] | None = Field(default=None, max_length=STOP_SEQUENCES_MAX)
    stream: StrictBool | None = None
    metadata: AnthropicMetadata | None = None
    thinking: ThinkingConfig | None = None


class AnthropicErrorDetail(_Open):
    type: AnthropicErrorType
    message: str


class AnthropicErrorBody(_Open):
    """`{"type": "error", "error": {"type", "message"}}`, as Anthropic (and this endpoint) answers errors."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail
