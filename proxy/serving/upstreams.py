"""Builds the provider adapter for a catalog model from the configured endpoints and the app's one session."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from proxy.catalog import CatalogModel
from proxy.errors import UpstreamUnavailable
from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.base import ApiKind, ProviderAdapter, ProviderEndpoint
from proxy.providers.gemini import GeminiAdapter
from proxy.providers.openai_compatible import OpenAICompatibleAdapter
from proxy.settings import ProviderSettings

__all__ = ["Upstreams"]

_ADAPTER_BY_KIND: Mapping[ApiKind, type[ProviderAdapter]] = {
    "openai": OpenAICompatibleAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


class Upstreams:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        providers: Mapping[str, ProviderSettings],
        *,
        timeout_s: float,
    ) -> None:
        assert timeout_s > 0
        self._session = session
        self._timeout_s = timeout_s
        self._endpoints = {
            name: ProviderEndpoint(
                base_url=provider.base_url,
                api_key=provider.api_key.get_secret_value() if provider.api_key else "",
                name=name,
            )
            for name, provider in providers.items()
        }

    @property
    def providers(self) -> frozenset[str]:
        """The providers with a configured endpoint: only their models can be routed to."""
        return frozenset(self._endpoints)

    def adapter_for(self, model: CatalogModel) -> ProviderAdapter:
        endpoint = self._endpoints.get(model.provider)
        if endpoint is None:
            raise UpstreamUnavailable(
                f"provider '{model.provider}' of model '{model.id}' is not configured",
                code="provider_not_configured",
            )
        adapter_type = _ADAPTER_BY_KIND[model.api_kind]
        return adapter_type(
            self._session, endpoint, upstream_model=model.upstream_model, timeout_s=self._timeout_s
        )
