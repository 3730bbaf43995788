"""Which wire API each provider speaks, so the proxy can pick the adapter for a catalog model.

Most hosts copy OpenAI's chat completions API; Anthropic (Messages API) and Google (Gemini
`generateContent`) have their own. Pure data, no I/O; imports nothing from the rest of the proxy.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Literal

from proxy.catalog.errors import UnknownProvider

__all__ = ["PROVIDER_API_KINDS", "PROVIDER_BASE_URLS", "ApiKind", "provider_api_kind"]

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


# Each provider's public API root, as its official SDK takes it (OpenAI-compatible ones end in their /v1).
# Azure has no fixed root (each deployment has its own host): configure it explicitly.
PROVIDER_BASE_URLS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        "openai": "https://api.openai.com/v1",
        "deepseek": "https://api.deepseek.com/v1",
        "xai": "https://api.x.ai/v1",
        "groq": "https://api.groq.com/openai/v1",
        "mistral": "https://api.mistral.ai/v1",
        "together": "https://api.together.xyz/v1",
        "fireworks": "https://api.fireworks.ai/inference/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "cerebras": "https://api.cerebras.ai/v1",
        "moonshot": "https://api.moonshot.ai/v1",
        "zai": "https://api.z.ai/api/paas/v4",
        "minimax": "https://api.minimax.io/v1",
        "perplexity": "https://api.perplexity.ai",
        "novita": "https://api.novita.ai/v3/openai",
        "deepinfra": "https://api.deepinfra.com/v1/openai",
        "anthropic": "https://api.anthropic.com",
        "google": "https://generativelanguage.googleapis.com",
    }
)


def provider_api_kind(provider: str) -> ApiKind:
    """Return the wire API of `provider`; raise `UnknownProvider` for one we have no adapter mapping for."""
    assert provider, "provider must be a non-empty name"
    api_kind = PROVIDER_API_KINDS.get(provider)
    if api_kind is None:
        raise UnknownProvider(provider)
    return api_kind
