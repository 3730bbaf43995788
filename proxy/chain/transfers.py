"""Reads ERC-20 `Transfer` and EIP-3009 `AuthorizationUsed` logs of our tokens over a block range.

Shared by the chain watcher (deposits to the settlement wallet) and chain reconciliation (movements in
and out of it). Logs are decoded here, by topic, with no contract objects; every RPC call is bounded by
`rpc_timeout_s` and fails as x402's ChainUnavailable. Nothing here writes anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception

from x402.chain import AUTHORIZATION_USED_TOPIC
from x402.errors import ChainUnavailable

__all__ = [
    "TRANSFER_TOPIC",
    "ZERO_ADDRESS",
    "AuthorizationUse",
    "TransferLog",
    "bounded_rpc",
    "fetch_authorization_uses",
    "fetch_transfer_logs",
    "transfer_external_ref",
]

TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
ZERO_ADDRESS = "0x" + "00" * 20
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TransferLog:
    """One decoded `Transfer(from, to, value)`; addresses and the hash lower-cased."""

    asset: str
    sender: str
    recipient: str
    value_atomic: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class AuthorizationUse:
    """One `AuthorizationUsed(authorizer, nonce)`: the transaction was an EIP-3009 transfer."""

    asset: str
    authorizer: str
    nonce: str
    tx_hash: str


def transfer_external_ref(network: str, tx_hash: str, log_index: int) -> str:
    """`<network>:<tx hash>:<log index>`, lower-cased: the same reference x402 bookings carry."""
    assert log_index >= 0
    assert tx_hash.startswith("0x")
    return f"{network}:{tx_hash}:{log_index}".lower()


async def bounded_rpc(call: Awaitable[_T], what: str, *, timeout_s: float) -> _T:
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except (TimeoutError, OSError, Web3Exception) as error:
        raise ChainUnavailable(f"RPC {what} failed: {type(error).__name__}") from error


def _address_topic(address: str) -> HexBytes:
    return HexBytes(abi_encode(["address"], [to_checksum_address(address)]))


def _topic_address(topic: Any) -> str:
    raw = bytes(HexBytes(topic))
    assert len(raw) == 32
    return "0x" + raw[12:].hex()


async def fetch_transfer_logs(
    w3: AsyncWeb3[Any],
    asset: str,
    *,
    from_block: int,
    to_block: int,
    sender: str | None = None,
    recipient: str | None = None,
    rpc_timeout_s: float,
) -> list[TransferLog]:
    """Transfer logs of `asset` in [from_block, to_block] by sender and/or recipient, in chain order."""
    assert 0 <= from_block <= to_block
    assert sender is not None or recipient is not None, "an unfiltered Transfer scan is never what we want"
    topics: list[Any] = [
        HexBytes(TRANSFER_TOPIC),
        None if sender is None else _address_topic(sender),
        None if recipient is None else _address_topic(recipient),
    ]
    params: Any = {
        "address": to_checksum_address(asset),
        "topics": topics,
        "fromBlock": from_block,
        "toBlock": to_block,
    }
    logs = await bounded_rpc(w3.eth.get_logs(params), "eth_getLogs", timeout_s=rpc_timeout_s)
    decoded = [_decode_transfer(log) for log in logs if not log.get("removed", False)]
    decoded.sort(key=lambda t: (t.block_number, t.log_index))
    return decoded


def _decode_transfer(log: Any) -> TransferLog:
    topics = log["topics"]
    assert len(topics) == 3, "an ERC-20 Transfer has indexed from and to"
    data = bytes(HexBytes(log["data"]))
    assert len(data) == 32, "an ERC-20 Transfer carries one uint256 value"
    return TransferLog(
        asset=str(log["address"]).lower(),
        sender=_topic_address(topics[1]),
        recipient=_topic_address(topics[2]),
        value_atomic=int.from_bytes(data, "big"),
        tx_hash=HexBytes(log["transactionHash"]).to_0x_hex().lower(),
        log_index=int(log["logIndex"]),
        block_number=int(log["blockNumber"]),
        block_hash=HexBytes(log["blockHash"]).to_0x_hex().lower(),
    )


async def fetch_authorization_uses(
    w3: AsyncWeb3[Any], asset: str, *, from_block: int, to_block: int, rpc_timeout_s: float
) -> list[AuthorizationUse]:
    """Every AuthorizationUsed log of `asset` in [from_block, to_block]."""
    assert 0 <= from_block <= to_block
    params: Any = {
        "address": to_checksum_address(asset),
        "topics": [HexBytes(AUTHORIZATION_USED_TOPIC)],
        "fromBlock": from_block,
        "toBlock": to_block,
    }
    logs = await bounded_rpc(w3.eth.get_logs(params), "eth_getLogs", timeout_s=rpc_timeout_s)
    return [
        AuthorizationUse(
            asset=str(log["address"]).lower(),
            authorizer=_topic_address(log["topics"][1]),
            nonce=HexBytes(log["topics"][2]).to_0x_hex().lower(),
            tx_hash=HexBytes(log["transactionHash"]).to_0x_hex().lower(),
        )
        for log in logs
        if not log.get("removed", False)
    ]
