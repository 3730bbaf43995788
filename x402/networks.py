"""Network identifiers: CAIP-2 (`eip155:<chainId>`, x402 v2) and the v1 network names.

Pure; no I/O. Only EVM (`eip155`) networks are supported.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from x402.errors import InvalidNetwork

__all__ = [
    "V1_NETWORK_CHAIN_IDS",
    "caip2_from_chain_id",
    "chain_id_from_caip2",
    "chain_id_from_v1_name",
    "v1_name_from_chain_id",
]

_CAIP2_EIP155 = re.compile(r"^eip155:([1-9][0-9]{0,18})$")

# v1 names as the x402 SDK knows them, plus "anvil" (MegaRouter's extension, so v1 works on a devnet).
V1_NETWORK_CHAIN_IDS: MappingProxyType[str, int] = MappingProxyType(
    {
        "ethereum": 1,
        "sepolia": 11155111,
        "base": 8453,
        "base-sepolia": 84532,
        "optimism": 10,
        "arbitrum": 42161,
        "polygon": 137,
        "polygon-amoy": 80002,
        "avalanche": 43114,
        "avalanche-fuji": 43113,
        "anvil": 31337,
    }
)


def caip2_from_chain_id(chain_id: int) -> str:
    assert chain_id > 0
    return f"eip155:{chain_id}"


def chain_id_from_caip2(network: str) -> int:
    """`eip155:8453` → 8453; anything else raises InvalidNetwork."""
    match = _CAIP2_EIP155.match(network)
    if match is None:
        raise InvalidNetwork(f"unsupported network {network[:64]!r}: expected eip155:<chainId>")
    return int(match.group(1))


def chain_id_from_v1_name(name: str) -> int:
    chain_id = V1_NETWORK_CHAIN_IDS.get(name)
    if chain_id is None:
        raise InvalidNetwork(f"unknown v1 network name {name[:64]!r}")
    return chain_id


def v1_name_from_chain_id(chain_id: int) -> str:
    for name, known_id in V1_NETWORK_CHAIN_IDS.items():
        if known_id == chain_id:
            return name
    raise InvalidNetwork(f"chain {chain_id} has no x402 v1 network name")
