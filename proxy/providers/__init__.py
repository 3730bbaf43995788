"""Provider adapters: one OpenAI-format interface over OpenAI-compatible, Anthropic and Gemini upstreams.

Owns the adapter contract (base.py), the upstream error taxonomy (errors.py), the adapters, token
estimates and the HTTP/SSE plumbing. Must not import aiohttp.web, the ledger, x402 or the rest of proxy/
(except proxy.openai_types).
"""

from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.base import (
    ApiKind,
    ChatResult,
    EmbeddingsResult,
    ProviderAdapter,
    ProviderEndpoint,
    StreamEvent,
    TokenUsage,
    openai_usage,
)
from proxy.providers.errors import (
    FAILOVER_KINDS,
    ProviderError,
    UnsupportedRequest,
    UpstreamError,
    UpstreamErrorKind,
)
from proxy.providers.gemini import GeminiAdapter
from proxy.providers.openai_compatible import OpenAICompatibleAdapter
from proxy.providers.tokens import estimate_prompt_tokens, estimate_text_tokens

__all__ = [
    "FAILOVER_KINDS",
    "AnthropicAdapter",
    "ApiKind",
    "ChatResult",
    "EmbeddingsResult",
    "GeminiAdapter",
    "OpenAICompatibleAdapter",
    "ProviderAdapter",
    "ProviderEndpoint",
    "ProviderError",
    "StreamEvent",
    "TokenUsage",
    "UnsupportedRequest",
    "UpstreamError",
    "UpstreamErrorKind",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "openai_usage",
]
