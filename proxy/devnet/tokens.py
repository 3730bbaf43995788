"""Deploys MegaRouter's EIP-3009 test tokens (USDC-like and USDT0-like) on a dev chain and mints them.

Used by the demo and the test fixtures against Anvil. Transactions are signed locally by an eth_account
LocalAccount (Anvil's account 0 by convention) and sent raw, so no node-side key management is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncWeb3

from contracts import load_artifact

__all__ = [
    "DEVNET_RECEIPT_TIMEOUT_S",
    "DevnetToken",
    "DevnetTokens",
    "await_devnet_success",
    "deploy_test_tokens",
    "mint",
    "mint_many",
    "send_devnet_transaction",
    "transfer",
]

DEVNET_RECEIPT_TIMEOUT_S = 30.0
TOKEN_DECIMALS = 6
# Anvil's base fee starts at 1 gwei and falls on idle blocks; double it plus the tip as the fee cap.
_PRIORITY_FEE_WEI = 1_000_000_000


@dataclass(frozen=True, slots=True)
class DevnetToken:
    """One deployed test token and its EIP-712 domain (what x402 requirements carry in `extra`)."""

    address: ChecksumAddress
    artifact_name: str
    name: str
    version: str
    symbol: str
    decimals: int = TOKEN_DECIMALS


@dataclass(frozen=True, slots=True)
class DevnetTokens:
    usdc: DevnetToken
    usdt: DevnetToken

    def all(self) -> tuple[DevnetToken, DevnetToken]:
        return (self.usdc, self.usdt)


# artifact name, EIP-712 name, EIP-712 version, symbol — must match contracts/src.
_USDC_SPEC = ("TestUSDC", "USD Coin", "2", "USDC")
_USDT_SPEC = ("TestUSDT0", "USDT0", "1", "USDT0")


async def _fee_fields(w3: AsyncWeb3[Any]) -> dict[str, int]:
    block = await w3.eth.get_block("latest")
    base_fee_wei = int(block.get("baseFeePerGas", 0))
    return {
        "maxPriorityFeePerGas": _PRIORITY_FEE_WEI,
        "maxFeePerGas": 2 * base_fee_wei + _PRIORITY_FEE_WEI,
    }


async def send_devnet_transaction(
    w3: AsyncWeb3[Any], account: LocalAccount, tx: dict[str, Any], nonce: int
) -> HexBytes:
    """Signs and sends one EIP-1559 transaction; returns its hash (the receipt is awaited by the caller)."""
    chain_id = await w3.eth.chain_id
    tx = {**tx, "from": account.address, "nonce": nonce, "chainId": chain_id, "type": 2}
    tx.update(await _fee_fields(w3))
    if "gas" not in tx:
        tx["gas"] = await w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "type"})  # type: ignore[arg-type]
    signed = account.sign_transaction(tx)
    return await w3.eth.send_raw_transaction(signed.raw_transaction)


async def await_devnet_success(w3: AsyncWeb3[Any], tx_hash: HexBytes) -> Any:
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=DEVNET_RECEIPT_TIMEOUT_S)
    if receipt["status"] != 1:
        raise RuntimeError(f"devnet transaction {tx_hash.hex()} reverted")
    return receipt


async def deploy_test_tokens(w3: AsyncWeb3[Any], deployer: LocalAccount) -> DevnetTokens:
    """Deploys both tokens from `deployer` (who alone may mint) and returns their addresses."""
    deployed: list[DevnetToken] = []
    nonce = await w3.eth.get_transaction_count(deployer.address, "pending")
    hashes = []
    for offset, (artifact_name, *_rest) in enumerate((_USDC_SPEC, _USDT_SPEC)):
        artifact = load_artifact(artifact_name)
        hashes.append(
            await send_devnet_transaction(w3, deployer, {"data": artifact.bytecode}, nonce + offset)
        )
    for tx_hash, (artifact_name, name, version, symbol) in zip(hashes, (_USDC_SPEC, _USDT_SPEC), strict=True):
        receipt = await await_devnet_success(w3, tx_hash)
        address = receipt["contractAddress"]
        assert address is not None
        deployed.append(
            DevnetToken(
                address=AsyncWeb3.to_checksum_address(address),
                artifact_name=artifact_name,
                name=name,
                version=version,
                symbol=symbol,
            )
        )
    return DevnetTokens(usdc=deployed[0], usdt=deployed[1])


def _mint_calldata(to: ChecksumAddress, amount_atomic: int) -> str:
    # mint(address,uint256): selector 0x40c10f19; arguments ABI-encoded as two 32-byte words.
    to_word = bytes.fromhex(to[2:]).rjust(32, b"\0")
    return "0x40c10f19" + to_word.hex() + amount_atomic.to_bytes(32, "big").hex()


async def mint(
    w3: AsyncWeb3[Any],
    deployer: LocalAccount,
    *,
    token: ChecksumAddress,
    to: ChecksumAddress,
    amount_atomic: int,
) -> None:
    """Mints `amount_atomic` of `token` to `to` and waits for the receipt."""
    await mint_many(w3, deployer, tokens=[token], recipients=[to], amount_atomic=amount_atomic)


async def mint_many(
    w3: AsyncWeb3[Any],
    deployer: LocalAccount,
    *,
    tokens: list[ChecksumAddress],
    recipients: list[ChecksumAddress],
    amount_atomic: int,
) -> None:
    """Mints `amount_atomic` of every token to every recipient: all sent first, then all receipts awaited."""
    assert amount_atomic > 0
    assert amount_atomic < 2**256
    nonce: int = await w3.eth.get_transaction_count(deployer.address, "pending")
    hashes = []
    for token in tokens:
        for recipient in recipients:
            tx = {"to": token, "data": _mint_calldata(recipient, amount_atomic), "gas": 100_000}
            hashes.append(await send_devnet_transaction(w3, deployer, tx, nonce))
            nonce += 1
    for tx_hash in hashes:
        await await_devnet_success(w3, tx_hash)


async def transfer(
    w3: AsyncWeb3[Any], sender: LocalAccount, *, token: ChecksumAddress, to: str, amount_atomic: int
) -> None:
    """A plain ERC-20 transfer of `amount_atomic` from `sender` to `to`, awaited (the supply is unchanged)."""
    assert amount_atomic >= 0
    to_word = bytes.fromhex(to[2:]).rjust(32, b"\0")
    data = "0xa9059cbb" + to_word.hex() + amount_atomic.to_bytes(32, "big").hex()
    nonce: int = await w3.eth.get_transaction_count(sender.address, "pending")
    tx = {"to": token, "data": data, "gas": 100_000}
    await await_devnet_success(w3, await send_devnet_transaction(w3, sender, tx, nonce))
