"""Quotes (a true upper bound of a request's cost) and charges (its real cost), in integer nano-USD.

The quote bounds the prompt by its UTF-8 size: byte-level BPE tokenizers never produce more tokens than
bytes, so `bytes + per-message overhead` cannot be exceeded, and each image part is bounded by the
largest tile budget any provider bills. Tool definitions, a named tool choice and a response JSON schema
count by their JSON size too (providers render them into the prompt), plus the providers' own framing.
Output is bounded by the `max_tokens` we send upstream, which is capped here so the worst case fits the
hold. A charge is `ceil(Σ tokens × price / 1e6)`: at most one nano-USD of rounding per request, always
in the operator's favour.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from proxy.money import TOKENS_PER_MTOK, div_ceil

__all__ = [
    "IMAGE_TOKENS_MAX",
    "STRUCTURED_OUTPUT_OVERHEAD_TOKENS",
    "Charge",
    "PricedModel",
    "Quote",
    "ReportedUsage",
    "charge_for_usage",
    "embeddings_input_tokens_upper_bound",
    "prompt_tokens_upper_bound",
    "quote_request",
    "raw_messages_prompt_tokens_upper_bound",
]

# Chat templates add a handful of tokens per message (role markers, separators) and per request.
MESSAGE_OVERHEAD_TOKENS = 8
REQUEST_OVERHEAD_TOKENS = 16
# Anthropic documents a tool-use system prompt of up to 346 tokens (tool_choice auto or none); other providers
# frame tools and JSON schemas with fewer. Rounded up generously: it only widens the hold, never the charge.
STRUCTURED_OUTPUT_OVERHEAD_TOKENS = 1_024
# The most any provider bills for one image (a 2048×2048 high-detail image is 2,805 tokens at OpenAI).
IMAGE_TOKENS_MAX = 4_000


class PricedModel(Protocol):
    """What pricing needs of a catalog model."""

    @property
    def input_price_nano_usd_per_mtok(self) -> int: ...
    @property
    def output_price_nano_usd_per_mtok(self) -> int: ...
    @property
    def cached_input_price_nano_usd_per_mtok(self) -> int: ...
    @property
    def cache_write_input_price_nano_usd_per_mtok(self) -> int: ...


class ReportedUsage(Protocol):
    """Token counts as the provider reported them; input_tokens includes cached and cache-write tokens."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_input_tokens(self) -> int: ...
    @property
    def cache_write_input_tokens(self) -> int: ...


class Quote(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_id: str
    prompt_tokens_max: int
    output_tokens_max: int
    cost_nano_usd_max: int


class Charge(BaseModel):
    """A request's real cost and how it was reached, so every charge can be explained afterwards."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    uncached_input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    input_price_nano_usd_per_mtok: int
    cached_input_price_nano_usd_per_mtok: int
    cache_write_input_price_nano_usd_per_mtok: int
    output_price_nano_usd_per_mtok: int
    cost_nano_usd: int


def _count_content_bytes(content: Any) -> tuple[int, int]:
    """(bytes, image parts) of a message's content, whatever its shape."""
    if content is None:
        return 0, 0
    if isinstance(content, str):
        return len(content.encode("utf-8")), 0
    if isinstance(content, list):
        total_bytes, images = 0, 0
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in {"image_url", "input_image", "image"}:
                images += 1
                continue
            part_bytes, part_images = _count_content_bytes(
                part if not isinstance(part, Mapping) else part.get("text", json.dumps(part))
            )
            total_bytes += part_bytes
            images += part_images
        return total_bytes, images
    return len(json.dumps(content, ensure_ascii=False).encode("utf-8")), 0


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def prompt_tokens_upper_bound(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Iterable[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    response_format: Mapping[str, Any] | None = None,
    other_fields: Mapping[str, Any] | None = None,
) -> int:
    """Tokens the provider may bill for the prompt: messages, and everything else it may render into the
    prompt (tool definitions, a named tool choice, a JSON schema to answer in, other fields passed
    through as sent), each by its JSON size."""
    total = REQUEST_OVERHEAD_TOKENS
    for message in messages:
        content_bytes, images = _count_content_bytes(message.get("content"))
        # Everything except content (role, name, tool calls, ids) is bounded by its JSON size.
        rest = {key: value for key, value in message.items() if key != "content"}
        total += MESSAGE_OVERHEAD_TOKENS + content_bytes + _json_bytes(rest) + images * IMAGE_TOKENS_MAX
    tools = list(tools or [])
    schema = (response_format or {}).get("json_schema")
    if tools:
        total += _json_bytes(tools)
    if tool_choice is not None:
        total += _json_bytes(tool_choice)
    if schema is not None:
        total += _json_bytes(schema)
    if other_fields:
        total += _json_bytes(other_fields)
    if tools or schema is not None:
        # Providers wrap tools and schemas in instructions of their own (tool use, or a schema sent as a
        # forced tool), billed as prompt tokens but absent from the request.
        total += STRUCTURED_OUTPUT_OVERHEAD_TOKENS
    assert total > 0
    return total


def _image_blocks(value: Any) -> int:
    """Image blocks anywhere in a JSON value (a tool result's content included)."""
    images, pending = 0, [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            images += item.get("type") == "image"
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return images


def raw_messages_prompt_tokens_upper_bound(body: Mapping[str, Any]) -> int:
    """Tokens an Anthropic upstream may bill for the prompt of a Messages request sent as it is (passed
    through untranslated): the UTF-8 size of the whole JSON body, which holds every text the upstream may
    render into the prompt (system, messages with their thinking blocks, tools, tool choice and any field
    unknown to us) and JSON escaping only widens; plus each message's framing, the largest image budget
    per image block wherever it sits, and the providers' own framing of tools and extended thinking."""
    messages = body.get("messages")
    assert isinstance(messages, list)
    total = REQUEST_OVERHEAD_TOKENS + _json_bytes(body)
    total += MESSAGE_OVERHEAD_TOKENS * len(messages)
    total += IMAGE_TOKENS_MAX * _image_blocks([body.get("system"), messages])
    if body.get("tools") or body.get("thinking"):
        total += STRUCTURED_OUTPUT_OVERHEAD_TOKENS
    assert total > 0
    return total


def embeddings_input_tokens_upper_bound(
    value: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
) -> int:
    """Texts are bounded by their UTF-8 size (plus a token each); pre-tokenized input counts exactly."""
    items: Sequence[Any] = [value] if isinstance(value, str) else value
    total = 0
    for item in items:
        if isinstance(item, str):
            total += len(item.encode("utf-8")) + 1
        elif isinstance(item, int):
            total += 1
        else:
            total += len(item)
    return max(total, 1)


def quote_request(
    model_id: str, model: PricedModel, *, prompt_tokens_max: int, output_tokens_max: int
) -> Quote:
    assert prompt_tokens_max > 0
    assert output_tokens_max >= 0
    # An input token may be billed as uncached, cached or cache-write: bound it by the dearest of the three.
    input_price = max(
        model.input_price_nano_usd_per_mtok,
        model.cached_input_price_nano_usd_per_mtok,
        model.cache_write_input_price_nano_usd_per_mtok,
    )
    numerator = prompt_tokens_max * input_price + output_tokens_max * model.output_price_nano_usd_per_mtok
    return Quote(
        model_id=model_id,
        prompt_tokens_max=prompt_tokens_max,
        output_tokens_max=output_tokens_max,
        cost_nano_usd_max=div_ceil(numerator, TOKENS_PER_MTOK),
    )


def charge_for_usage(model_id: str, model: PricedModel, usage: ReportedUsage) -> Charge:
    assert usage.input_tokens >= usage.cached_input_tokens + usage.cache_write_input_tokens
    assert usage.output_tokens >= 0
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_input_tokens
    numerator = (
        uncached * model.input_price_nano_usd_per_mtok
        + usage.cached_input_tokens * model.cached_input_price_nano_usd_per_mtok
        + usage.cache_write_input_tokens * model.cache_write_input_price_nano_usd_per_mtok
        + usage.output_tokens * model.output_price_nano_usd_per_mtok
    )
    return Charge(
        model_id=model_id,
        uncached_input_tokens=uncached,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_input_tokens=usage.cache_write_input_tokens,
        output_tokens=usage.output_tokens,
        input_price_nano_usd_per_mtok=model.input_price_nano_usd_per_mtok,
        cached_input_price_nano_usd_per_mtok=model.cached_input_price_nano_usd_per_mtok,
        cache_write_input_price_nano_usd_per_mtok=model.cache_write_input_price_nano_usd_per_mtok,
        output_price_nano_usd_per_mtok=model.output_price_nano_usd_per_mtok,
        cost_nano_usd=div_ceil(numerator, TOKENS_PER_MTOK),
    )
