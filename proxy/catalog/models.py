"""The catalog's record types: one frozen `CatalogModel` per routable model, and the file envelope.

Prices are ints in nano-USD per million tokens (DESIGN §4); a request costs
`ceil(Σ tokens × price / 1_000_000)` nano-USD, computed by the proxy's pricing module, not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "TASK_KINDS",
    "CatalogFile",
    "CatalogModel",
    "CatalogSource",
    "ModelCapabilities",
    "ModelQuality",
    "TaskKind",
]

TaskKind = Literal["chat", "summarization", "extraction", "code", "math", "reasoning"]
TASK_KINDS: tuple[TaskKind, ...] = ("chat", "summarization", "extraction", "code", "math", "reasoning")

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class ModelCapabilities(BaseModel):
    """What a model accepts; the router only sends a request to models that support all it uses."""

    model_config = _FROZEN

    tools: bool = False
    vision: bool = False
    json_mode: bool = False
    streaming: bool = True
    reasoning: bool = False
    embeddings: bool = False


class ModelQuality(BaseModel):
    """Scores 0..100 from cited public evaluation results, or `rated=False` (no public figure).

    A rated model has every score; `basis` names the figures, `source` the publication and `as_of` the
    date of the figures. An unrated model has none (all scores null): routing uses it only when the
    caller allows unrated models or nothing rated fits. No score is ever derived from price.
    """

    model_config = _FROZEN

    rated: bool
    overall: int | None = Field(default=None, ge=0, le=100)
    chat: int | None = Field(default=None, ge=0, le=100)
    summarization: int | None = Field(default=None, ge=0, le=100)
    extraction: int | None = Field(default=None, ge=0, le=100)
    code: int | None = Field(default=None, ge=0, le=100)
    math: int | None = Field(default=None, ge=0, le=100)
    reasoning: int | None = Field(default=None, ge=0, le=100)
    basis: str = Field(min_length=1)
    source: str = ""  # where the figures were published (URL); empty when unrated
    as_of: str = ""  # date of the figures (ISO date or month); empty when unrated

    @model_validator(mode="after")
    def _scores_match_rated(self) -> ModelQuality:
        scores = [self.overall, *(getattr(self, kind) for kind in TASK_KINDS)]
        if self.rated and any(score is None for score in scores):
            raise ValueError("a rated model needs every score")
        if not self.rated and any(score is not None for score in scores):
            raise ValueError("an unrated model has no scores")
        if self.rated and not (self.source and self.as_of):
            raise ValueError("a rated model cites a source and its date")
        return self

    def for_task(self, kind: TaskKind) -> int | None:
        """Score for one task kind, e.g. the classifier's `kind`; None when unrated."""
        score: int | None = getattr(self, kind)
        return score


class CatalogModel(BaseModel):
    """One model at one provider, with its native prices; immutable so it can be shared freely."""

    model_config = _FROZEN

    id: str = Field(min_length=3, pattern=r"^[a-z0-9][a-z0-9._-]*/\S+$")
    provider: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    upstream_model: str = Field(min_length=1)
    api_kind: Literal["openai", "anthropic", "gemini"]
    display_name: str = Field(min_length=1)
    input_price_nano_usd_per_mtok: int = Field(ge=0)
    output_price_nano_usd_per_mtok: int = Field(ge=0)
    cached_input_price_nano_usd_per_mtok: int = Field(ge=0)
    cache_write_input_price_nano_usd_per_mtok: int = Field(ge=0)
    context_window_tokens: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    capabilities: ModelCapabilities
    quality: ModelQuality
    # Where the prices came from, e.g. "genai-prices 0.2.3: openai/gpt-4o-mini", or "operator override".
    source_ref: str = Field(min_length=1)
    # The source's own decimal strings (USD per MTok) for audit: each converts exactly to the ints above.
    source_prices_usd_per_mtok: dict[str, str] = Field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _id_is_provider_slash_upstream(self) -> CatalogModel:
        if self.id != f"{self.provider}/{self.upstream_model}":
            raise ValueError(f"id {self.id!r} must equal provider/upstream_model")
        if self.max_output_tokens > self.context_window_tokens and not self.capabilities.embeddings:
            raise ValueError(f"{self.id}: max_output_tokens exceeds context_window_tokens")
        return self


class CatalogSource(BaseModel):
    """A data source the catalog was built from: name, exact version, licence, and what it supplied."""

    model_config = _FROZEN

    name: str
    version: str
    licence: str
    url: str
    used_for: str
    retrieved: str = ""


class CatalogFile(BaseModel):
    """The envelope of proxy/catalog/catalog.json."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1]
    catalog_version: str
    generated_at: str
    generator: str
    price_unit: Literal["nano_usd_per_mtok"]
    sources: tuple[CatalogSource, ...]
    methodology: dict[str, str]
    models: tuple[CatalogModel, ...]
