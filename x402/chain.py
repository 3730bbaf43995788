"""Async reads of an EIP-3009 token through AsyncWeb3: name, version, balance, authorization state, logs.

Calls are ABI-encoded here (no contract objects, no ABI files), so any EIP-3009 token works, and every
call is bounded by `call_timeout_s`. RPC failures raise ChainUnavailable. The token's name and version
never change, so they are cached per asset on the instance (never at module level).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception
from web3.types import BlockIdentifier

from x402.errors import ChainUnavailable

__all__ = ["AUTHORIZATION_USED_TOPIC", "AuthorizationUsedLog", "TokenReader"]

AUTHORIZATION_USED_TOPIC = keccak(text="AuthorizationUsed(address,bytes32)")
_SELECTOR_NAME = keccak(text="name()")[:4]
_SELECTOR_VERSION = keccak(text="version()")[:4]
_SELECTOR_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
_SELECTOR_AUTHORIZATION_STATE = keccak(text="authorizationState(address,bytes32)")[:4]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AuthorizationUsedLog:
    tx_hash: str
    block_number: int
    log_index: int


class TokenReader:
    """Reads token state for verification and settlement; one per AsyncWeb3 (per app)."""

    def __init__(self, w3: AsyncWeb3[Any], *, call_timeout_s: float = 10.0) -> None:
        assert call_timeout_s > 0
        self._w3 = w3
        self._call_timeout_s = call_timeout_s
        self._chain_id: int | None = None
        self._domain_by_asset: dict[str, tuple[str, str]] = {}

    @property
    def w3(self) -> AsyncWeb3[Any]:
        return self._w3

    async def _bounded(self, call: Awaitable[_T], what: str) -> _T:
        try:
            async with asyncio.timeout(self._call_timeout_s):
                return await call
        except (TimeoutError, OSError, Web3Exception) as error:
            raise ChainUnavailable(f"RPC {what} failed: {type(error).__name__}") from error

    async def _call(self, asset: str, data: bytes, *, block: BlockIdentifier = "latest") -> bytes:
        tx: Any = {"to": to_checksum_address(asset), "data": HexBytes(data)}
        result: bytes = await self._bounded(self._w3.eth.call(tx, block), "eth_call")
        return bytes(result)

    async def call_contract(self, to: str, data: bytes) -> bytes:
        """A bounded eth_call of any contract at the latest block (Permit2's reads use it too)."""
        return await self._call(to, data)

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self._bounded(self._w3.eth.chain_id, "eth_chainId"))
        return self._chain_id

    async def has_code(self, asset: str) -> bool:
        code = await self._bounded(self._w3.eth.get_code(to_checksum_address(asset)), "eth_getCode")
        return len(code) > 0

    async def domain(self, asset: str) -> tuple[str, str]:
        """(name(), version()) of the token, cached per asset."""
        key = asset.lower()
        cached = self._domain_by_asset.get(key)
        if cached is None:
            name_raw, version_raw = await asyncio.gather(
                self._call(asset, _SELECTOR_NAME), self._call(asset, _SELECTOR_VERSION)
            )
            cached = (_decode_string(name_raw), _decode_string(version_raw))
            self._domain_by_asset[key] = cached
        return cached

    async def block_number(self) -> int:
        """The chain head's number: reads pinned to it see one consistent state."""
        number = int(await self._bounded(self._w3.eth.block_number, "eth_blockNumber"))
        assert number >= 0
        return number

    async def balance_atomic(self, asset: str, owner: str, *, block_number: int | None = None) -> int:
        """`owner`'s balance of `asset` at the end of `block_number` (default: the latest block)."""
        data = _SELECTOR_BALANCE_OF + abi_encode(["address"], [owner])
        raw = await self._call(asset, data, block="latest" if block_number is None else block_number)
        balance_atomic: int = abi_decode(["uint256"], raw)[0]
        return balance_atomic

    async def authorization_used(self, asset: str, authorizer: str, nonce: str) -> bool:
        """EIP-3009 `authorizationState`: true once the nonce is used or canceled."""
        args = abi_encode(["address", "bytes32"], [authorizer, bytes.fromhex(nonce.removeprefix("0x"))])
        raw = await self._call(asset, _SELECTOR_AUTHORIZATION_STATE + args)
        used: bool = abi_decode(["bool"], raw)[0]
        return used

    async def authorization_used_logs(
        self, asset: str, authorizer: str, nonce: str, *, from_block: int, to_block: int | None = None
    ) -> list[AuthorizationUsedLog]:
        """AuthorizationUsed(authorizer, nonce) events of the token in [from_block, to_block or latest]."""
        assert from_block >= 0
        topics: list[Any] = [
            HexBytes(AUTHORIZATION_USED_TOPIC),
            HexBytes(abi_encode(["address"], [authorizer])),
            HexBytes(bytes.fromhex(nonce.removeprefix("0x"))),
        ]
        params: Any = {
            "address": to_checksum_address(asset),
            "topics": topics,
            "fromBlock": from_block,
            "toBlock": "latest" if to_block is None else to_block,
        }
        logs = await self._bounded(self._w3.eth.get_logs(params), "eth_getLogs")
        return [
            AuthorizationUsedLog(
                tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
                block_number=int(log["blockNumber"]),
                log_index=int(log["logIndex"]),
            )
            for log in logs
        ]


def _decode_string(raw: bytes) -> str:
    try:
        value: str = abi_decode(["string"], raw)[0]
    except Exception as error:  # eth_abi raises several decoding error types; all mean "not a string".
        raise ChainUnavailable("token returned a non-string name/version") from error
    return value
