"""Points every catalog provider at a simulated provider, each through the API format it really speaks."""

from __future__ import annotations

from proxy.catalog import Catalog, provider_api_kind
from proxy.settings import ProviderSettings

__all__ = ["SIMULATOR_API_KEY", "simulated_providers"]

# The simulators accept any non-empty key; a fixed one keeps the Authorization path exercised.
SIMULATOR_API_KEY = "sim-key"


def simulated_providers(catalog: Catalog, *, simulator_base_url: str) -> dict[str, ProviderSettings]:
    root = simulator_base_url.rstrip("/")
    base_by_kind = {"openai": f"{root}/v1", "anthropic": root, "gemini": root}
    return {
        provider: ProviderSettings(
            api_kind=provider_api_kind(provider),
            base_url=base_by_kind[provider_api_kind(provider)],
            api_key=SIMULATOR_API_KEY,  # type: ignore[arg-type]
        )
        for provider in catalog.providers()
    }
