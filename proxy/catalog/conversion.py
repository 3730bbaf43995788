"""Turn one price-source record into a catalog entry (all but quality); used by scripts/build_catalog.py.

Lives in the package, free of any source library, so a unit test can re-run the exact conversion
on a copied source record and compare with the committed catalog.json entry. Pure, no I/O.

Rules (also written into catalog.json's `methodology`):
- prices: the source's USD-per-MTok decimals → int nano-USD per MTok via `Decimal(str(x))`; an
  inexact value fails the build. A missing cached-input or cache-write price means the provider
  has no discount for it, so it defaults to the input price (never charge below native).
- tiered prices (more expensive above N input tokens): the base tier is used and the context
  window is capped at N, so the base price is always the right one for any accepted request.
- time-of-day prices (off-peak discounts): the highest band is used, so no request is undercharged.
- context window: the price source's, else the secondary source's `max_input_tokens`, else 8,192.
- max output: the secondary source's `max_output_tokens`, else min(context, 8,192); capped at context.
- capabilities: the secondary source's `supports_*` flags; without a record, conservative defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from proxy.catalog.prices import nano_usd_per_mtok_from_usd_per_mtok
from proxy.catalog.providers import provider_api_kind

__all__ = [
    "DEFAULT_CONTEXT_WINDOW_TOKENS",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "SourceRecord",
    "convert_source_record",
]

DEFAULT_CONTEXT_WINDOW_TOKENS: Final = 8_192
DEFAULT_MAX_OUTPUT_TOKENS: Final = 8_192
_REASONING_MARKERS: Final = ("reasoner", "-r1", "r1-", "thinking", "reasoning", "magistral", "qwq")


@dataclass(frozen=True)
class SourceRecord:
    """What the build read from its sources for one model, before conversion."""

    provider: str  # catalog provider name, e.g. "xai" (the source may call it "x-ai")
    upstream_model: str
    display_name: str
    source_ref: str  # e.g. "genai-prices 0.2.3: x-ai/grok-3"
    # The source's price decimals as strings, USD per MTok, keyed input/output/cache_read/cache_write.
    prices_usd_per_mtok: Mapping[str, str]
    context_window_tokens: int | None = None
    tier_start_tokens: int | None = None
    time_of_day_priced: bool = False
    embeddings: bool = False
    secondary: Mapping[str, Any] | None = None  # the litellm record, if one was found
    secondary_ref: str = ""
    notes: tuple[str, ...] = field(default=())


def convert_source_record(record: SourceRecord) -> dict[str, Any]:
    """Return the catalog.json entry for `record`, without `quality` (the build adds it)."""
    assert record.provider
    assert record.upstream_model
    prices = {
        kind: nano_usd_per_mtok_from_usd_per_mtok(value) for kind, value in record.prices_usd_per_mtok.items()
    }
    assert "input" in prices, f"{record.source_ref}: no input price"
    input_price = prices["input"]
    output_price = prices.get("output", 0)
    assert record.embeddings or "output" in prices, f"{record.source_ref}: chat model without output price"
    notes = list(record.notes)
    secondary = record.secondary or {}
    context, context_note = _context_window_tokens(record, secondary)
    if context_note:
        notes.append(context_note)
    max_output = secondary.get("max_output_tokens") or secondary.get("max_tokens")
    if not isinstance(max_output, int) or max_output <= 0:
        max_output = min(context, DEFAULT_MAX_OUTPUT_TOKENS)
        notes.append(f"max_output_tokens: no source figure, conservative default {max_output}")
    max_output = min(max_output, context)
    if record.time_of_day_priced:
        notes.append("time-of-day pricing in source: the highest (peak) band is used")
    if not record.secondary:
        notes.append("capabilities: no secondary-source record, conservative defaults")
    entry: dict[str, Any] = {
        "id": f"{record.provider}/{record.upstream_model}",
        "provider": record.provider,
        "upstream_model": record.upstream_model,
        "api_kind": provider_api_kind(record.provider),
        "display_name": record.display_name,
        "input_price_nano_usd_per_mtok": input_price,
        "output_price_nano_usd_per_mtok": output_price,
        "cached_input_price_nano_usd_per_mtok": prices.get("cache_read", input_price),
        "cache_write_input_price_nano_usd_per_mtok": prices.get("cache_write", input_price),
        "context_window_tokens": context,
        "max_output_tokens": max_output,
        "capabilities": _capabilities(record, secondary),
        "source_ref": record.source_ref
        + (f"; limits/capabilities: {record.secondary_ref}" if record.secondary_ref else ""),
        "source_prices_usd_per_mtok": dict(sorted(record.prices_usd_per_mtok.items())),
        "notes": notes,
    }
    assert entry["cached_input_price_nano_usd_per_mtok"] >= 0
    return entry


def _context_window_tokens(record: SourceRecord, secondary: Mapping[str, Any]) -> tuple[int, str]:
    context = record.context_window_tokens
    note = ""
    if context is None:
        fallback = secondary.get("max_input_tokens")
        if isinstance(fallback, int) and fallback > 0:
            context = fallback
        else:
            context = DEFAULT_CONTEXT_WINDOW_TOKENS
            note = f"context_window_tokens: no source figure, conservative default {context}"
    if record.tier_start_tokens is not None and record.tier_start_tokens < context:
        note = (
            f"context_window_tokens capped from {context} at the first price tier "
            f"({record.tier_start_tokens} input tokens) so the base price always applies"
        )
        context = record.tier_start_tokens
    assert context > 0
    return context, note


def _capabilities(record: SourceRecord, secondary: Mapping[str, Any]) -> dict[str, bool]:
    name = record.upstream_model.lower()
    if record.embeddings:
        return {
            "tools": False,
            "vision": False,
            "json_mode": False,
            "streaming": False,
            "reasoning": False,
            "embeddings": True,
        }
    return {
        "tools": bool(secondary.get("supports_function_calling", False)),
        "vision": bool(secondary.get("supports_vision", False)),
        "json_mode": bool(secondary.get("supports_response_schema", False)),
        "streaming": True,
        "reasoning": bool(secondary.get("supports_reasoning", False))
        or any(m in name for m in _REASONING_MARKERS),
        "embeddings": False,
    }
