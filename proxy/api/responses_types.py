"""Pydantic models of the request of OpenAI's Responses API (`POST /v1/responses`), as MegaRouter accepts it.

Owns: the request body and its input items, tools, tool choice and text format. Unlike the chat request
models, these refuse unknown fields (`extra="forbid"`): the body is translated, not passed through, so a
field we do not translate (reasoning, include, background, built-in tools…) must be a 400 naming it, never
a silent drop. `store` and `previous_response_id` ask for conversation state, which the handler keeps per
API key (proxy/api/responses_store.py). Must not import aiohttp.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.openai_types import TOKENS_REQUESTED_MAX

__all__ = [
    "METADATA_ENTRIES_MAX",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "FunctionToolChoice",
    "InputImagePart",
    "InputItem",
    "InputTextPart",
    "MessageItem",
    "OutputTextPart",
    "RefusalPart",
    "ResponsesRequest",
    "TextConfig",
    "TextFormat",
    "TextFormatJsonObject",
    "TextFormatJsonSchema",
    "TextFormatText",
]

# OpenAI's own bounds on `metadata`: 16 pairs, keys up to 64 characters, values up to 512.
METADATA_ENTRIES_MAX = 16
METADATA_KEY_CHARS_MAX = 64
METADATA_VALUE_CHARS_MAX = 512
StrictBool = Annotated[bool, Field(strict=True)]


class _Closed(BaseModel):
    """Refuses unknown fields: whatever is not translated is refused, by name."""

    model_config = ConfigDict(extra="forbid")


class InputTextPart(_Closed):
    type: Literal["input_text"]
    text: str


class InputImagePart(_Closed):
    type: Literal["input_image"]
    image_url: str  # https URL or data: URL; MegaRouter has no files API, so file_id is not accepted.
    detail: Literal["auto", "low", "high"] | None = None


class OutputTextPart(_Closed):
    """An earlier answer's text, sent back as part of the conversation."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class RefusalPart(_Closed):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    InputTextPart | InputImagePart | OutputTextPart | RefusalPart, Field(discriminator="type")
]


class MessageItem(_Closed):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None  # Present when an earlier response's output item is sent back.
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallItem(_Closed):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallOutputItem(_Closed):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[InputTextPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem


class FunctionTool(_Closed):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema
    strict: StrictBool | None = None


class FunctionToolChoice(_Closed):
    type: Literal["function"]
    name: str


class TextFormatText(_Closed):
    type: Literal["text"]


class TextFormatJsonObject(_Closed):
    type: Literal["json_object"]


class TextFormatJsonSchema(_Closed):
    type: Literal["json_schema"]
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: StrictBool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


TextFormat = Annotated[
    TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")
]


class TextConfig(_Closed):
    format: TextFormat | None = None


class ResponsesRequest(_Closed):
    model: str
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    max_output_tokens: int | None = Field(default=None, strict=True, ge=1, le=TOKENS_REQUESTED_MAX)
    temperature: float | None = Field(default=None, strict=True, ge=0, le=2)
    top_p: float | None = Field(default=None, strict=True, ge=0, le=1)
    text: TextConfig | None = None
    stream: StrictBool | None = None
    metadata: (
        Annotated[
            dict[
                Annotated[str, Field(max_length=METADATA_KEY_CHARS_MAX)],
                Annotated[str, Field(max_length=METADATA_VALUE_CHARS_MAX)],
            ],
            Field(max_length=METADATA_ENTRIES_MAX),
        ]
        | None
    ) = None
    user: str | None = None
    # Conversation state: by default a keyed caller's responses are stored (as OpenAI's are); an x402 payer
    # without a key has no state to keep.
    store: StrictBool | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=64)
