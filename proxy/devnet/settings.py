"""MegaRouter's Settings for a dev chain: the deployed test tokens accepted, providers at the simulators.

One place for what the tests, the benchmarks and any other devnet runner would otherwise each spell out:
which assets the router accepts (the tokens just deployed) and where every catalog provider is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.catalog import load_catalog
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.providers import simulated_providers
from proxy.devnet.tokens import DevnetTokens
from proxy.settings import AssetSettings, ProviderSettings, Settings

__all__ = ["devnet_assets", "devnet_settings"]


def devnet_assets(tokens: DevnetTokens) -> tuple[AssetSettings, ...]:
    """The deployed test tokens as accepted assets, with the EIP-712 domain their contracts declare."""
    return tuple(
        AssetSettings(
            symbol=token.symbol,
            address=token.address,
            eip712_name=token.name,
            eip712_version=token.version,
            decimals=token.decimals,
        )
        for token in tokens.all()
    )


def devnet_settings(
    *,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    settlement_key: str,
    simulator_base_url: str,
    database_url: str,
    default_model: str,
    providers: Mapping[str, ProviderSettings] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for a router on `anvil`; every catalog provider is served by the simulator at
    `simulator_base_url` unless `providers` is given. `overrides` are any other Settings fields."""
    return Settings(
        database_url=database_url,
        chain_rpc_url=anvil.rpc_url,
        chain_id=anvil.chain_id,
        settlement_private_key=settlement_key,
        assets=devnet_assets(tokens),
        providers=dict(providers)
        if providers is not None
        else simulated_providers(load_catalog(), simulator_base_url=simulator_base_url),
        default_model=default_model,
        **overrides,
    )
