"""Token estimates for when a provider reports no usage, and for the simulator's realistic counts.

Roughly 4 characters of English per token (OpenAI's rule of thumb), a few tokens of framing per message
(OpenAI's cookbook counts 3, plus 3 to prime the reply), and a fixed cost per image (85 tokens at low
detail, 765 for a typical 1024×1024 image at high detail). Estimates are for bounds and fallbacks; the
provider's reported usage always wins when there is one. Pure: no I/O.
"""

from __future__ import annotations

import json

from proxy.openai_types import ChatCompletionRequest, ChatMessage, ImageContentPart, TextContentPart

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS_HIGH",
    "IMAGE_TOKENS_LOW",
    "estimate_message_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765


def estimate_text_tokens(text: str) -> int:
    """ceil(characters / 4): never zero for non-empty text."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_message_tokens(message: ChatMessage) -> int:
    tokens = MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(message.name or "")
    if isinstance(message.content, str):
        tokens += estimate_text_tokens(message.content)
    elif message.content is not None:
        for part in message.content:
            if isinstance(part, TextContentPart):
                tokens += estimate_text_tokens(part.text)
            elif isinstance(part, ImageContentPart):
                tokens += IMAGE_TOKENS_LOW if part.image_url.detail == "low" else IMAGE_TOKENS_HIGH
            else:
                tokens += estimate_text_tokens(json.dumps(part.model_dump(mode="json")))
    for call in message.tool_calls or []:
        tokens += estimate_text_tokens(call.function.name) + estimate_text_tokens(call.function.arguments)
    return tokens


def estimate_prompt_tokens(request: ChatCompletionRequest) -> int:
    """Prompt tokens of a chat request: messages, framing, tool definitions and the response JSON schema
    (both sent as JSON schema, and billed as prompt)."""
    tokens = REPLY_PRIMING_TOKENS + sum(estimate_message_tokens(message) for message in request.messages)
    for tool in request.tools or []:
        tokens += estimate_text_tokens(json.dumps(tool.function.model_dump(mode="json", exclude_none=True)))
    if request.response_format is not None and request.response_format.json_schema is not None:
        schema = request.response_format.json_schema.model_dump(mode="json", exclude_none=True)
        tokens += estimate_text_tokens(json.dumps(schema))
    assert tokens > 0
    return tokens
