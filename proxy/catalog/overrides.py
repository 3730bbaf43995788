"""Operator overrides and additions to the packaged catalog, read from a TOML or JSON file.

Format (TOML shown; JSON is the same shape, `{"models": [...]}`)::

    [[models]]                       # change fields of a packaged model
    id = "openai/gpt-4o-mini"
    input_usd_per_mtok = "0.15"      # prices: USD per million tokens, ALWAYS a decimal string
    output_usd_per_mtok = "0.6"

    [[models]]                       # add a model: prices, context window and max output required
    id = "acme/acme-large"           # provider = text before the first "/", upstream model = the rest
    api_kind = "openai"              # optional for known providers (proxy.catalog.providers)
    input_usd_per_mtok = "1.25"
    output_usd_per_mtok = "5"
    context_window_tokens = 131072
    max_output_tokens = 8192
    capabilities = { tools = true, json_mode = true }
    quality = { overall = 70, code = 75 }   # unspecified kinds default to overall; without it: unrated

    [[models]]                       # drop a packaged model
    id = "openai/gpt-3.5-turbo"
    remove = true

Prices are strings so no TOML/JSON float ever holds money; each must convert exactly to whole
nano-USD per MTok (at most 9 decimal places) and be ≥ 0. Unknown keys are refused. Every error
names the file, the model id and the field. Omitted cached/cache-write prices of an added model
default to its input price, so cache tokens are never charged below the native input price.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from proxy.catalog.errors import CatalogOverrideError, UnknownProvider
from proxy.catalog.models import CatalogModel, ModelCapabilities, ModelQuality
from proxy.catalog.prices import InexactPrice, nano_usd_per_mtok_from_usd_per_mtok
from proxy.catalog.providers import provider_api_kind

__all__ = ["CatalogOverrides", "ModelOverride", "apply_overrides", "parse_overrides", "read_overrides"]

OVERRIDE_FILE_BYTES_MAX = 4_000_000
_PRICE_FIELDS: dict[str, str] = {
    "input_usd_per_mtok": "input_price_nano_usd_per_mtok",
    "output_usd_per_mtok": "output_price_nano_usd_per_mtok",
    "cached_input_usd_per_mtok": "cached_input_price_nano_usd_per_mtok",
    "cache_write_input_usd_per_mtok": "cache_write_input_price_nano_usd_per_mtok",
}


class CapabilitiesOverride(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tools: bool | None = None
    vision: bool | None = None
    json_mode: bool | None = None
    streaming: bool | None = None
    reasoning: bool | None = None
    embeddings: bool | None = None


class QualityOverride(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    overall: int | None = Field(default=None, ge=0, le=100)
    chat: int | None = Field(default=None, ge=0, le=100)
    summarization: int | None = Field(default=None, ge=0, le=100)
    extraction: int | None = Field(default=None, ge=0, le=100)
    code: int | None = Field(default=None, ge=0, le=100)
    math: int | None = Field(default=None, ge=0, le=100)
    reasoning: int | None = Field(default=None, ge=0, le=100)
    basis: str | None = None


class ModelOverride(BaseModel):
    """One `[[models]]` entry; every field but `id` is optional (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: str = Field(min_length=3)
    remove: bool = False
    display_name: str | None = None
    upstream_model: str | None = None
    api_kind: Literal["openai", "anthropic", "gemini"] | None = None
    input_usd_per_mtok: str | None = None
    output_usd_per_mtok: str | None = None
    cached_input_usd_per_mtok: str | None = None
    cache_write_input_usd_per_mtok: str | None = None
    context_window_tokens: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    capabilities: CapabilitiesOverride | None = None
    quality: QualityOverride | None = None
    notes: list[str] | None = None


@dataclass(frozen=True)
class CatalogOverrides:
    """A parsed override file and the hash of its bytes (which goes into the catalog version)."""

    models: tuple[ModelOverride, ...]
    content_sha256: str


def read_overrides(path: Path) -> CatalogOverrides:
    """Read and validate an override file; `.toml` is TOML, anything else must be JSON."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CatalogOverrideError(f"overrides file {path}: cannot read: {error}") from error
    if len(content) > OVERRIDE_FILE_BYTES_MAX:
        raise CatalogOverrideError(f"overrides file {path}: larger than {OVERRIDE_FILE_BYTES_MAX} bytes")
    return parse_overrides(content, is_toml=path.suffix.lower() == ".toml", origin=str(path))


def parse_overrides(content: bytes, *, is_toml: bool, origin: str) -> CatalogOverrides:
    """Parse override bytes; raise `CatalogOverrideError` naming the model id and field on any problem."""
    try:
        text = content.decode("utf-8")
        document: Any = tomllib.loads(text) if is_toml else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise CatalogOverrideError(
            f"overrides file {origin}: not valid {'TOML' if is_toml else 'JSON'}: {error}"
        ) from error
    if (
        not isinstance(document, dict)
        or set(document) != {"models"}
        or not isinstance(document["models"], list)
    ):
        raise CatalogOverrideError(f"overrides file {origin}: must contain exactly one key, a `models` list")
    entries: list[ModelOverride] = []
    seen_ids: set[str] = set()
    for index, raw in enumerate(document["models"]):
        label = raw.get("id", f"#{index}") if isinstance(raw, dict) else f"#{index}"
        try:
            entry = ModelOverride.model_validate(raw)
        except pydantic.ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "(entry)"
            raise CatalogOverrideError(
                f"overrides file {origin}: model {label!r}: field {field!r}: {problem['msg']}"
            ) from error
        if entry.id in seen_ids:
            raise CatalogOverrideError(f"overrides file {origin}: model {entry.id!r} is listed twice")
        seen_ids.add(entry.id)
        _check_prices(entry, origin=origin)
        entries.append(entry)
    return CatalogOverrides(models=tuple(entries), content_sha256=hashlib.sha256(content).hexdigest())


def _check_prices(entry: ModelOverride, *, origin: str) -> dict[str, int]:
    prices: dict[str, int] = {}
    for override_field, catalog_field in _PRICE_FIELDS.items():
        value = getattr(entry, override_field)
        if value is None:
            continue
        try:
            prices[catalog_field] = nano_usd_per_mtok_from_usd_per_mtok(value)
        except InexactPrice as error:
            raise CatalogOverrideError(
                f"overrides file {origin}: model {entry.id!r}: field {override_field!r}: {error} "
                f"(give USD per million tokens as a decimal string with at most 9 decimal places)"
            ) from error
    return prices


def apply_overrides(
    models: tuple[CatalogModel, ...], overrides: CatalogOverrides, *, origin: str
) -> tuple[CatalogModel, ...]:
    """Return `models` with each override applied: update, remove, or append a new model."""
    by_id = {model.id: model for model in models}
    for entry in overrides.models:
        existing = by_id.get(entry.id)
        if entry.remove:
            if existing is None:
                raise CatalogOverrideError(
                    f"overrides file {origin}: model {entry.id!r}: cannot remove, "
                    "no such model in the catalog"
                )
            del by_id[entry.id]
            continue
        try:
            merged = _merge(existing, entry, origin=origin)
            by_id[entry.id] = CatalogModel.model_validate(merged)
        except pydantic.ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "(entry)"
            raise CatalogOverrideError(
                f"overrides file {origin}: model {entry.id!r}: field {field!r}: {problem['msg']}"
            ) from error
    assert all(model_id == model.id for model_id, model in by_id.items())
    return tuple(by_id.values())


def _merge(existing: CatalogModel | None, entry: ModelOverride, *, origin: str) -> dict[str, Any]:
    prices = _check_prices(entry, origin=origin)
    if existing is None:
        base = _new_model_base(entry, prices, origin=origin)
    else:
        base = existing.model_dump()
        base["source_ref"] = f"{existing.source_ref}; overridden by {origin}"
        if prices:
            base["source_prices_usd_per_mtok"] = {}
    base.update(prices)
    for field in ("display_name", "context_window_tokens", "max_output_tokens", "api_kind"):
        value = getattr(entry, field)
        if value is not None:
            base[field] = value
    if entry.capabilities is not None:
        base["capabilities"] = {**base["capabilities"], **entry.capabilities.model_dump(exclude_none=True)}
    if entry.quality is not None:
        base["quality"] = _merged_quality(base["quality"], entry.quality, origin=origin, model_id=entry.id)
    if entry.notes is not None:
        base["notes"] = list(entry.notes)
    base["capabilities"] = ModelCapabilities.model_validate(base["capabilities"])
    base["quality"] = ModelQuality.model_validate(base["quality"])
    base["notes"] = tuple(base["notes"])
    return base


def _new_model_base(entry: ModelOverride, prices: dict[str, int], *, origin: str) -> dict[str, Any]:
    provider, _, upstream_default = entry.id.partition("/")
    missing = [
        name
        for name in (
            "input_usd_per_mtok",
            "output_usd_per_mtok",
            "context_window_tokens",
            "max_output_tokens",
        )
        if getattr(entry, name) is None
    ]
    if missing:
        raise CatalogOverrideError(
            f"overrides file {origin}: model {entry.id!r}: new model needs field(s) "
            f"{', '.join(map(repr, missing))}"
        )
    api_kind = entry.api_kind
    if api_kind is None:
        try:
            api_kind = provider_api_kind(provider)
        except UnknownProvider as error:
            raise CatalogOverrideError(
                f"overrides file {origin}: model {entry.id!r}: field 'api_kind': {error}"
            ) from error
    input_price = prices["input_price_nano_usd_per_mtok"]
    return {
        "id": entry.id,
        "provider": provider,
        "upstream_model": entry.upstream_model or upstream_default,
        "api_kind": api_kind,
        "display_name": entry.upstream_model or upstream_default,
        "cached_input_price_nano_usd_per_mtok": input_price,
        "cache_write_input_price_nano_usd_per_mtok": input_price,
        "capabilities": ModelCapabilities().model_dump(),
        # No score was given: unrated (never a made-up figure); a `quality` override rates it.
        "quality": {"rated": False, "basis": f"operator addition in {origin}, no score given"},
        "source_ref": f"operator addition in {origin}",
        "source_prices_usd_per_mtok": {},
        "notes": [],
    }


def _merged_quality(
    current: dict[str, Any], override: QualityOverride, *, origin: str, model_id: str
) -> dict[str, Any]:
    given = override.model_dump(exclude_none=True)
    kinds = ("chat", "summarization", "extraction", "code", "math", "reasoning")
    if "overall" not in given and not current.get("rated"):
        raise CatalogOverrideError(
            f"overrides file {origin}: model {model_id!r}: field 'quality': an unrated model needs 'overall'"
        )
    merged = {**current, **given}
    if "overall" in given:
        # Kinds the operator did not name follow the new overall score rather than keep stale values.
        for kind in kinds:
            if kind not in given:
                merged[kind] = given["overall"]
    merged["rated"] = True
    merged["basis"] = given.get("basis", f"operator override in {origin}")
    merged["source"] = f"operator overrides file {origin}"
    merged["as_of"] = "operator"
    return merged
