"""The demo's providers: each catalog provider at its real API when its key is in the environment
(`<PROVIDER>_API_KEY`), else at the simulated provider, each through the API format it really speaks."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.catalog import PROVIDER_BASE_URLS, Catalog, provider_api_kind
from proxy.settings import ProviderSettings

__all__ = ["SIMULATOR_API_KEY", "demo_providers", "provider_key_variable", "simulated_providers"]

# The simulators accept any non-empty key; a fixed one keeps the Authorization path exercised.
SIMULATOR_API_KEY = "sim-key"


def simulated_providers(catalog: Catalog, *, simulator_base_url: str) -> dict[str, ProviderSettings]:
    root = simulator_base_url.rstrip("/")
    base_by_kind = {"openai": f"{root}/v1", "anthropic": root, "gemini": root}
    return {
        provider: ProviderSettings(
            api_kind=provider_api_kind(provider),
            base_url=base_by_kind[provider_api_kind(provider)],
            api_key=SIMULATOR_API_KEY,
        )
        for provider in catalog.providers()
    }


def provider_key_variable(provider: str) -> str:
    return f"{provider.upper().replace('-', '_')}_API_KEY"


def demo_providers(
    catalog: Catalog, *, simulator_base_url: str, environ: Mapping[str, str]
) -> tuple[dict[str, ProviderSettings], list[str]]:
    """Providers for the demo, and the names of those served for real (their key was set)."""
    providers = simulated_providers(catalog, simulator_base_url=simulator_base_url)
    real: list[str] = []
    for provider in providers:
        key = environ.get(provider_key_variable(provider))
        base_url = PROVIDER_BASE_URLS.get(provider)
        if key and base_url:
            providers[provider] = ProviderSettings(
                api_kind=provider_api_kind(provider),
                base_url=base_url,
                api_key=key,
            )
            real.append(provider)
    return providers, sorted(real)
