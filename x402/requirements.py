"""Builds x402 payment requirements for a quote: one `exact` entry per accepted asset, in atomic units.

Pure; no I/O. A quote in nano-USD (1e-9 USD) is rounded UP to the token's atomic unit so that the
payment always covers the quote (stablecoins count at par with USD).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from x402.models import PaymentRequirements, PaymentRequirementsV1, ResourceInfo
from x402.networks import caip2_from_chain_id, chain_id_from_caip2, v1_name_from_chain_id

__all__ = [
    "NANO_USD_DECIMALS",
    "AcceptedAsset",
    "atomic_from_nano_usd",
    "build_requirements",
    "to_v1_requirements",
]

NANO_USD_DECIMALS = 9
EXACT_SCHEME = "exact"


@dataclass(frozen=True, slots=True)
class AcceptedAsset:
    """A token the operator accepts: its address and EIP-712 domain name/version (`extra` on the wire)."""

    address: str
    name: str
    version: str
    decimals: int = 6


def atomic_from_nano_usd(amount_nano_usd: int, *, decimals: int) -> int:
    """nano-USD → atomic units of a USD stablecoin with `decimals`, rounded up."""
    assert amount_nano_usd >= 0
    assert 0 <= decimals <= 36
    if decimals >= NANO_USD_DECIMALS:
        return amount_nano_usd * int(10 ** (decimals - NANO_USD_DECIMALS))
    nano_usd_per_atomic = int(10 ** (NANO_USD_DECIMALS - decimals))
    return -(-amount_nano_usd // nano_usd_per_atomic)


def build_requirements(
    *,
    quote_nano_usd: int,
    chain_id: int,
    assets: Sequence[AcceptedAsset],
    pay_to: str,
    max_timeout_s: int,
) -> list[PaymentRequirements]:
    """v2 `accepts` entries for a quote, in the order of `assets` (the first is the preferred one)."""
    assert quote_nano_usd > 0
    assert assets, "at least one accepted asset"
    assert max_timeout_s > 0
    network = caip2_from_chain_id(chain_id)
    return [
        PaymentRequirements(
            scheme=EXACT_SCHEME,
            network=network,
            amount=atomic_from_nano_usd(quote_nano_usd, decimals=asset.decimals),
            asset=asset.address,
            pay_to=pay_to,
            max_timeout_seconds=max_timeout_s,
            extra={"name": asset.name, "version": asset.version},
        )
        for asset in assets
    ]


def to_v1_requirements(requirements: PaymentRequirements, *, resource: ResourceInfo) -> PaymentRequirementsV1:
    """The same offer in v1 shape (network name, `maxAmountRequired`, resource fields per entry)."""
    return PaymentRequirementsV1(
        scheme=requirements.scheme,
        network=v1_name_from_chain_id(chain_id_from_caip2(requirements.network)),
        max_amount_required=requirements.amount,
        resource=resource.url,
        description=resource.description or "",
        mime_type=resource.mime_type or "",
        pay_to=requirements.pay_to,
        max_timeout_seconds=requirements.max_timeout_seconds,
        asset=requirements.asset,
        extra=requirements.extra,
    )
