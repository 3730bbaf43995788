"""The caller's routing wishes (`route` object) and the hard requirements that filter deployments.

Owns `RouteRequest` (parsed from the request body's `route` object), `PriceCeiling`, `RequestNeeds`
(what the request itself uses: prompt size, tools, images, JSON mode, streaming) and the pure filter
that keeps only the deployments meeting all of them. Pure: no I/O, imports only the catalog types.

`max_price` — decided here, as two forms:
- an integer: a ceiling in nano-USD on this request's worst-case cost at a deployment, i.e. on the
  quote `ceil((prompt_tokens_max × input price + output_tokens_max × output price) / 1e6)`. A
  deployment whose quote exceeds it is never tried, so the hold never exceeds it either.
- an object `{"prompt": "0.5", "completion": "1.5", "request": "0.01"}` (OpenRouter's convention):
  `prompt` / `completion` are ceilings on a deployment's list prices in USD per million tokens, and
  `request` a ceiling in USD on the quote as above. Values are plain decimal strings ("0.5", no
  exponent, no sign) or JSON numbers, converted exactly; anything finer than 1 nano-USD is rejected,
  never rounded.
  The same ceilings may also be given in our own units (`input_nano_usd_per_mtok`,
  `output_nano_usd_per_mtok`, `request_nano_usd`, integers), but not mixed with the USD keys.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, MutableMapping
from decimal import Decimal
from typing import Literal, get_args

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proxy.catalog import CatalogModel
from proxy.catalog.pricing import quote_request
from proxy.money import NANO_USD_PER_USD, usd_text_to_nano_usd
from proxy.routing.errors import InvalidRoute

__all__ = [
    "CAPABILITIES",
    "CONTENT_PART_TYPES_CARRIED",
    "Capability",
    "PriceCeiling",
    "RequestNeeds",
    "RouteRequest",
    "Strategy",
    "filter_deployments",
    "parse_route",
    "quote_ceiling_nano_usd",
]

Strategy = Literal["balanced", "cost", "latency", "availability"]
Capability = Literal["tools", "vision", "json_mode", "streaming", "reasoning"]
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)

# Bounds on the route object, so a request cannot make routing do unbounded work.
ROUTE_LIST_ITEMS_MAX = 64
# Any real price ceiling is far below this (1 million USD); it keeps ints well inside int64.
PRICE_CEILING_NANO_USD_MAX = 1_000_000 * NANO_USD_PER_USD

# Content part types each API kind's adapter can translate (proxy/providers/*.py); None: passed through as
# sent (an OpenAI-compatible upstream takes input_audio, file…). A deployment that cannot carry a part the
# request uses is filtered out here, before anything is held, instead of failing in the adapter after.
CONTENT_PART_TYPES_CARRIED: dict[str, frozenset[str] | None] = {
    "openai": None,
    "anthropic": frozenset({"text", "image_url"}),
    "gemini": frozenset({"text", "image_url"}),
}

_USD_KEYS = {
    "prompt": "input_nano_usd_per_mtok",
    "completion": "output_nano_usd_per_mtok",
    "request": "request_nano_usd",
}


def _nano_usd_from_usd(value: object, *, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"max_price.{key} must be a decimal string or a number of USD")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"max_price.{key} must be a finite, non-negative amount of USD")
    # A float's shortest repr is exact as a Decimal; written out plainly (no exponent) it takes the same
    # strict path as a string, so "1e999999" never reaches Decimal arithmetic (decimal.Overflow).
    text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
    try:
        nano_usd = usd_text_to_nano_usd(text)
    except ValueError as error:
        raise ValueError(f"max_price.{key}: {error}") from error
    if nano_usd > PRICE_CEILING_NANO_USD_MAX:
        raise ValueError(
            f"max_price.{key} must be at most {PRICE_CEILING_NANO_USD_MAX // NANO_USD_PER_USD} USD"
        )
    return nano_usd


class PriceCeiling(BaseModel):
    """Ceilings in nano-USD; None means no ceiling of that kind. At least one is set."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    input_nano_usd_per_mtok: int | None = Field(default=None, ge=0, le=PRICE_CEILING_NANO_USD_MAX)
    output_nano_usd_per_mtok: int | None = Field(default=None, ge=0, le=PRICE_CEILING_NANO_USD_MAX)
    request_nano_usd: int | None = Field(default=None, ge=0, le=PRICE_CEILING_NANO_USD_MAX)

    @model_validator(mode="after")
    def _something_set(self) -> PriceCeiling:
        if (
            self.input_nano_usd_per_mtok is None
            and self.output_nano_usd_per_mtok is None
            and (self.request_nano_usd is None)
        ):
            raise ValueError("max_price must set at least one of prompt, completion, request")
        return self


def _price_ceiling_from_wire(value: object) -> object:
    """Turn the wire forms (int nano-USD, or an object in USD or in nano-USD) into PriceCeiling fields."""
    if value is None or isinstance(value, PriceCeiling):
        return value
    if isinstance(value, bool):
        raise ValueError("max_price must be an integer (nano-USD per request) or an object")
    if isinstance(value, int):
        return {"request_nano_usd": value}
    if not isinstance(value, Mapping):
        raise ValueError("max_price must be an integer (nano-USD per request) or an object")
    keys = set(value)
    if keys and keys <= set(_USD_KEYS):
        return {_USD_KEYS[key]: _nano_usd_from_usd(value[key], key=key) for key in keys}
    if keys & set(_USD_KEYS):
        raise ValueError(
            f"max_price mixes USD keys {sorted(_USD_KEYS)} with other keys {sorted(keys - set(_USD_KEYS))}"
        )
    return value


class RouteRequest(BaseModel):
    """The request's `route` object. Every field is optional; `{}` means the server's defaults.

    - `strategy`: how to rank the deployments that pass the hard requirements.
    - `max_price`: see the module docstring.
    - `models`: allow-list of catalog ids ("groq/llama-3.3-70b-versatile") or provider-neutral names
      ("llama-3.3-70b", matched through `canonical_model_key`). With an explicit `model`, these are
      also its fallbacks, tried in the order given after the other providers of the named model.
    - `providers`: allow-list of providers.
    - `require`: capabilities the chosen model must have even when this request does not use them.
    - `allow_fallbacks`: with an explicit `model`, whether models the strategy picks (beyond the named
      one, its other providers and `models`) may serve when those fail. Ignored for `model: "auto"`.
    - `allow_unrated`: whether models without a cited public quality figure (catalog `quality.rated`
      false) may be chosen like rated ones meeting the need. Without it they are used only when no
      rated model passes the hard requirements. Also settable by the `X-MegaRouter-Allow-Unrated` header.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = "balanced"
    max_price: PriceCeiling | None = None
    models: tuple[str, ...] = Field(default=(), max_length=ROUTE_LIST_ITEMS_MAX)
    providers: tuple[str, ...] = Field(default=(), max_length=ROUTE_LIST_ITEMS_MAX)
    require: tuple[Capability, ...] = Field(default=(), max_length=len(CAPABILITIES))
    allow_fallbacks: bool = False
    allow_unrated: bool = False

    @field_validator("max_price", mode="before")
    @classmethod
    def _max_price_forms(cls, value: object) -> object:
        return _price_ceiling_from_wire(value)

    @field_validator("models", "providers")
    @classmethod
    def _names_not_blank(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name.strip():
                raise ValueError("names must not be blank")
        return tuple(dict.fromkeys(name.strip() for name in names))


def parse_route(raw: object) -> RouteRequest:
    """Parse the body's `route` value (None or absent = defaults); raise `InvalidRoute` naming the field."""
    if raw is None:
        return RouteRequest()
    if not isinstance(raw, Mapping):
        raise InvalidRoute("route must be an object")
    try:
        return RouteRequest.model_validate(raw)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in ("route", *first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        problems = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
        raise InvalidRoute(f"{where}: {message}{problems}", param=where) from error


class RequestNeeds(BaseModel):
    """What the chat request itself uses, as the handler sees it before routing.

    `prompt_tokens` is a realistic estimate used for the context-window check; `prompt_tokens_max` an
    upper bound (the quote's) used for the price ceiling, defaulting to `prompt_tokens`. A deployment
    must fit `prompt_tokens + output_tokens_reserved` in its context window. `output_tokens_max` is
    the `max_tokens` the handler will send (None: the model's own maximum), for the quote ceiling.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_tokens: int = Field(ge=0)
    prompt_tokens_max: int | None = Field(default=None, ge=0)
    output_tokens_reserved: int = Field(default=1, ge=1)
    output_tokens_max: int | None = Field(default=None, ge=1)
    tools: bool = False
    vision: bool = False
    json_mode: bool = False
    streaming: bool = False
    # Every content part type the messages use ("text", "image_url", "input_audio", …).
    content_part_types: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _bound_is_a_bound(self) -> RequestNeeds:
        if self.prompt_tokens_max is not None and self.prompt_tokens_max < self.prompt_tokens:
            raise ValueError("prompt_tokens_max must not be below prompt_tokens")
        return self

    def capabilities_used(self) -> frozenset[Capability]:
        used: set[Capability] = {
            name for name in ("tools", "vision", "json_mode", "streaming") if getattr(self, name)
        }
        return frozenset(used)


def quote_ceiling_nano_usd(model: CatalogModel, needs: RequestNeeds) -> int:
    """Worst-case cost of this request at `model`: what the `request` ceiling is compared with."""
    prompt_tokens = needs.prompt_tokens if needs.prompt_tokens_max is None else needs.prompt_tokens_max
    output_tokens = model.max_output_tokens
    if needs.output_tokens_max is not None:
        output_tokens = min(output_tokens, needs.output_tokens_max)
    # The very quote the handler will hold, so a ceiling never admits a deployment it would then exceed.
    quote = quote_request(
        model.id, model, prompt_tokens_max=max(prompt_tokens, 1), output_tokens_max=output_tokens
    )
    return quote.cost_nano_usd_max


def _static_exclusion(
    model: CatalogModel,
    *,
    route: RouteRequest,
    required: frozenset[Capability],
    content_part_types: frozenset[str],
    providers_available: Collection[str],
    models_allowed: Collection[str] | None,
) -> str | None:
    """Why `model` may not serve requests of this shape, whatever their size (the checks that come first)."""
    if model.capabilities.embeddings:
        return "embeddings model"
    if model.provider not in providers_available:
        return "provider not configured"
    if route.providers and model.provider not in route.providers:
        return "provider not in route.providers"
    if models_allowed is not None and model.id not in models_allowed:
        return "model not in route.models"
    if required:
        missing = sorted(name for name in required if not getattr(model.capabilities, name))
        if missing:
            return f"lacks {missing[0]}"
    carried = CONTENT_PART_TYPES_CARRIED[model.api_kind]
    if carried is not None and not content_part_types <= carried:
        return f"cannot carry content part {sorted(content_part_types - carried)[0]}"
    return None


def _sized_exclusion(model: CatalogModel, *, route: RouteRequest, needs: RequestNeeds) -> str | None:
    """Why `model` may not serve this very request: its size against the context window and the ceilings."""
    if needs.prompt_tokens + needs.output_tokens_reserved > model.context_window_tokens:
        return "context window too small"
    ceiling = route.max_price
    if ceiling is not None:
        if ceiling.input_nano_usd_per_mtok is not None and (
            model.input_price_nano_usd_per_mtok > ceiling.input_nano_usd_per_mtok
        ):
            return "input price above max_price"
        if ceiling.output_nano_usd_per_mtok is not None and (
            model.output_price_nano_usd_per_mtok > ceiling.output_nano_usd_per_mtok
        ):
            return "output price above max_price"
        if (
            ceiling.request_nano_usd is not None
            and quote_ceiling_nano_usd(model, needs) > ceiling.request_nano_usd
        ):
            return "quote above max_price"
    return None


# Shapes remembered per catalog index; past this many the memo starts afresh (a bound, not an LRU).
STATIC_POOLS_MAX = 256
# (kept, excluded per reason, the smallest context window among the kept).
StaticPools = MutableMapping[Hashable, tuple[tuple[CatalogModel, ...], Counter[str], int]]


def filter_deployments(
    models: Iterable[CatalogModel],
    *,
    route: RouteRequest,
    needs: RequestNeeds,
    providers_available: Collection[str],
    models_allowed: Collection[str] | None,
    static_pools: StaticPools | None = None,
) -> tuple[list[CatalogModel], Counter[str]]:
    """(deployments meeting every hard requirement, in input order; count of exclusions per reason).

    `models_allowed` is the set of catalog ids `route.models` resolved to (None: no allow-list). With
    `static_pools` (owned by the caller, for one fixed `models`), the size-independent checks of a request
    shape are done once and remembered: each request then only checks its size, deployment by deployment.
    """
    required = frozenset(route.require) | needs.capabilities_used()
    shape = (
        frozenset(providers_available),
        frozenset(route.providers) if route.providers else None,
        None if models_allowed is None else frozenset(models_allowed),
        required,
        needs.content_part_types,
    )
    remembered = None if static_pools is None else static_pools.get(shape)
    if remembered is None:
        static_kept: list[CatalogModel] = []
        static_excluded: Counter[str] = Counter()
        for model in models:
            reason = _static_exclusion(
                model,
                route=route,
                required=required,
                content_part_types=needs.content_part_types,
                providers_available=providers_available,
                models_allowed=models_allowed,
            )
            if reason is None:
                static_kept.append(model)
            else:
                static_excluded[reason] += 1
        smallest_window = min((model.context_window_tokens for model in static_kept), default=0)
        remembered = (tuple(static_kept), static_excluded, smallest_window)
        if static_pools is not None:
            if len(static_pools) >= STATIC_POOLS_MAX:
                static_pools.clear()
            static_pools[shape] = remembered
    excluded = Counter(remembered[1])
    if route.max_price is None and needs.prompt_tokens + needs.output_tokens_reserved <= remembered[2]:
        # Without a price ceiling only the context window is sized, and this request fits the smallest.
        return list(remembered[0]), excluded
    kept: list[CatalogModel] = []
    for model in remembered[0]:
        reason = _sized_exclusion(model, route=route, needs=needs)
        if reason is None:
            kept.append(model)
        else:
            excluded[reason] += 1
    return kept, excluded
