"""Which wire API each provider speaks, so the proxy can pick the adapter for a catalog model.

Most hosts copy OpenAI's chat completions API; Anthropic (Messages API) and Google (Gemini
`generateContent`) have their own. Pure data, no I/O; imports nothing from the rest of the proxy.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Literal

from proxy.catalog.errors import UnknownProvider

__all__ = ["PROVIDER_API_KINDS", "ApiKind", "provider_api_kind"]

ApiKind = Literal["openai", "anthropic", "gemini"]

# Read-only on purpose: a process-wide table nobody may mutate at run time.
PROVIDER_API_KINDS: Final[MappingProxyType[str, ApiKind]] = MappingProxyType(
    {
        "openai": "openai",
        "azure": "openai",
        "deepseek": "openai",
        "xai": "openai",
        "groq": "openai",
        "mistral": "openai",
        "together": "openai",
        "fireworks": "openai",
        "openrouter": "openai",
        "cerebras": "openai",
        "moonshot": "openai",
        "zai": "openai",
        "minimax": "openai",
        "perplexity": "openai",
        "novita": "openai",
        "deepinfra": "openai",
        "anthropic": "anthropic",
        "google": "gemini",
    }
)


def provider_api_kind(provider: str) -> ApiKind:
    """Return the wire API of `provider`; raise `UnknownProvider` for one we have no adapter mapping for."""
    assert provider, "provider must be a non-empty name"
    api_kind = PROVIDER_API_KINDS.get(provider)
    if api_kind is None:
        raise UnknownProvider(provider)
    return api_kind
