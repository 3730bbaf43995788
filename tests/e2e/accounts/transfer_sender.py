"""A TransferSender built on web3 directly, standing in for `Settler.transfer` until branch `watcher` lands.

It signs plain ERC-20 `transfer` calls from the settlement key under one lock (nonce from the chain's
pending count, which Anvil's automine keeps exact), calls `before_send` before sending, and awaits receipts
outside the lock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import AsyncWeb3

from proxy.accounts.withdrawals import BeforeSendTransfer
from x402.errors import TransactionFailed
from x402.settle import SignedSettlement

__all__ = ["MinedErc20Transfer", "Web3TransferSender"]

TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
RECEIPT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class MinedErc20Transfer:
    tx_hash: str
    block_number: int
    transfer_log_index: int | None


class Web3TransferSender:
    def __init__(self, w3: AsyncWeb3[Any], account: LocalAccount, *, chain_id: int) -> None:
        self._w3 = w3
        self._account = account
        self._chain_id = chain_id
        self._lock = asyncio.Lock()
        self.sent_tx_hashes: list[str] = []

    @property
    def address(self) -> str:
        return str(self._account.address)

    async def transfer(
        self, asset: str, to: str, amount_atomic: int, *, before_send: BeforeSendTransfer | None = None
    ) -> MinedErc20Transfer:
        data = TRANSFER_SELECTOR + abi_encode(
            ["address", "uint256"], [AsyncWeb3.to_checksum_address(to), amount_atomic]
        )
        async with self._lock:
            tx_nonce = await self._w3.eth.get_transaction_count(self._account.address, "pending")
            block = await self._w3.eth.get_block("latest")
            tx: dict[str, Any] = {
                "type": 2,
                "chainId": self._chain_id,
                "nonce": tx_nonce,
                "to": AsyncWeb3.to_checksum_address(asset),
                "value": 0,
                "data": data,
                "gas": 100_000,
                "maxPriorityFeePerGas": 1_000_000_000,
                "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 1_000_000_000,
            }
            signed_tx = self._account.sign_transaction(tx)
            signed = SignedSettlement(
                raw_tx=bytes(signed_tx.raw_transaction),
                tx_hash=HexBytes(signed_tx.hash).to_0x_hex(),
                tx_nonce=tx_nonce,
                from_block=int(block["number"]),
            )
            if before_send is not None:
                await before_send(signed)
            await self._w3.eth.send_raw_transaction(signed.raw_tx)
            self.sent_tx_hashes.append(signed.tx_hash)
        receipt = await self._w3.eth.wait_for_transaction_receipt(
            HexBytes(signed.tx_hash), timeout=RECEIPT_TIMEOUT_S
        )
        if receipt["status"] != 1:
            raise TransactionFailed(f"transfer {signed.tx_hash} reverted")
        log_index = next(
            (
                int(entry["logIndex"])
                for entry in receipt["logs"]
                if entry["topics"] and bytes(entry["topics"][0]) == TRANSFER_TOPIC
            ),
            None,
        )
        return MinedErc20Transfer(
            tx_hash=signed.tx_hash, block_number=int(receipt["blockNumber"]), transfer_log_index=log_index
        )
