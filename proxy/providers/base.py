"""The adapter contract: what every provider adapter takes and returns, whatever its wire format.

Owns `TokenUsage`, `ProviderEndpoint`, `ChatResult`, `StreamEvent`, `EmbeddingsResult` and the abstract
`ProviderAdapter`. Callers always speak OpenAI format (proxy.openai_types); each adapter translates to its
upstream's format and back. Must not import aiohttp.web or anything of the proxy beyond openai_types.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, model_validator

from proxy.openai_types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionTokensDetails,
    EmbeddingsRequest,
    EmbeddingsResponse,
    PromptTokensDetails,
    Usage,
)
from proxy.providers.errors import UnsupportedRequest

__all__ = [
    "ApiKind",
    "ChatResult",
    "EmbeddingsResult",
    "ProviderAdapter",
    "ProviderEndpoint",
    "StreamEvent",
    "TokenUsage",
    "openai_usage",
]

ApiKind = Literal["openai", "anthropic", "gemini"]


class TokenUsage(BaseModel):
    """Tokens of one request, as the provider reported them (or as we estimated them: `estimated`).

    `input_tokens` counts every prompt token, cached or not; `cached_input_tokens` (read from a cache) and
    `cache_write_input_tokens` (written to a cache) are parts of it, so the tokens billed at the plain input
    price are `uncached_input_tokens`. Likewise `output_tokens` includes `reasoning_tokens`. Providers
    disagree here (Anthropic reports input without cache tokens, Gemini reports output without thoughts);
    the adapters normalise to this one convention.
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_input_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    estimated: bool = False

    @model_validator(mode="after")
    def _parts_fit_totals(self) -> TokenUsage:
        if self.cached_input_tokens + self.cache_write_input_tokens > self.input_tokens:
            raise ValueError("cached and cache-write input tokens exceed input tokens")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning tokens exceed output tokens")
        return self

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cached_input_tokens - self.cache_write_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def openai_usage(usage: TokenUsage) -> Usage:
    """The OpenAI `usage` object for a TokenUsage (OpenAI's convention is ours: parts inside the totals)."""
    return Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_input_tokens),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=usage.reasoning_tokens),
    )


class ProviderEndpoint(BaseModel):
    """Where and how to reach one provider. `base_url` follows each official SDK's convention:
    OpenAI-compatible `https://api.openai.com/v1`, Anthropic `https://api.anthropic.com`,
    Gemini `https://generativelanguage.googleapis.com` (the adapter adds `/v1beta/...`)."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    api_key: str = Field(default="", repr=False)
    extra_headers: Mapping[str, str] = Field(default_factory=dict)
    name: str = ""  # The provider's name, for messages and logs.

    @property
    def root_url(self) -> str:
        return self.base_url.rstrip("/")


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A complete, non-streamed answer in OpenAI format plus the normalised usage."""

    response: ChatCompletion
    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class EmbeddingsResult:
    response: EmbeddingsResponse
    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of `chat_stream`: an OpenAI-format chunk, or (exactly once, last) the usage of the stream.

    Adapters never put usage inside chunks; the caller renders a usage chunk if its own caller asked for
    `stream_options.include_usage`. When the upstream did not report usage, the adapter estimates it and
    sets `TokenUsage.estimated`. A stream passed through untranslated (an adapter's `*_raw_stream`)
    yields each upstream event as `raw`, with its translation as `chunk` when it has one (so that
    failover and the charge of a cut stream see what it produced), then the usage.
    """

    chunk: ChatCompletionChunk | None = None
    usage: TokenUsage | None = None
    raw: Mapping[str, Any] | None = None
    kind: Literal["chunk", "usage", "raw"] = field(init=False)

    def __post_init__(self) -> None:
        if self.raw is not None:
            assert self.usage is None, "a raw event carries no usage"
            object.__setattr__(self, "kind", "raw")
            return
        assert (self.chunk is None) != (self.usage is None), "exactly one of chunk and usage"
        object.__setattr__(self, "kind", "chunk" if self.chunk is not None else "usage")


class ProviderAdapter(abc.ABC):
    """Calls one upstream model of one provider. Cheap to build: one per deployment or per request.

    `timeout_s` bounds a whole non-streamed call, and the wait for a stream's first event; `stream_idle_s`
    bounds each wait for a following stream event. Every failure comes out as `UpstreamError`.
    """

    api_kind: ClassVar[ApiKind]

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: ProviderEndpoint,
        *,
        upstream_model: str,
        timeout_s: float,
        stream_idle_s: float | None = None,
    ) -> None:
        assert timeout_s > 0
        assert upstream_model
        self.session = session
        self.endpoint = endpoint
        self.upstream_model = upstream_model
        self.timeout_s = timeout_s
        self.stream_idle_s = stream_idle_s if stream_idle_s is not None else timeout_s

    @abc.abstractmethod
    async def chat(self, request: ChatCompletionRequest) -> ChatResult:
        """One non-streamed chat completion. The adapter sends its upstream_model, not `request.model`."""

    @abc.abstractmethod
    def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[StreamEvent]:
        """Chunks as they arrive, then one usage event. Raises UpstreamError, also midway."""

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        raise UnsupportedRequest(f"{self.api_kind} adapter does not serve embeddings")
