"""The chain side of reconciliation: what moved in and out of the settlement wallet, and what it holds.

Reads, over a block range, every token `Transfer` to and from the settlement wallet (as external movements
keyed exactly like the ledger's external_ref, `<network>:<tx hash>:<log index>`), the receipts of our
settlement transactions (status and gas), and the wallet's token balances at the range's last block. The
matching itself (each movement to exactly one ledger transaction and back, balances against cash accounts,
breaks by kind) belongs to the ledger's reconciliation core; this module only observes the chain, and
writes nothing.

The input models are defined here because `ledger/reconcile.py` did not exist when this was written; the
field names follow the plan (external_ref, direction, account, amount_nano_usd, observed balance per cash
account) so the two can be mapped one to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from web3.exceptions import TransactionNotFound

from ledger import chart
from proxy.chain_transfers import TransferLog, bounded_rpc, fetch_transfer_logs, transfer_external_ref
from proxy.chain_watcher import WatchedToken
from proxy.db.tables import x402_settlements
from proxy.money import atomic_to_nano_usd
from proxy.payments.intents import SettlementStatus
from x402.errors import ChainUnavailable

__all__ = [
    "ChainObservation",
    "Direction",
    "ExternalMovement",
    "ObservedBalance",
    "SettlementReceipt",
    "load_settlement_tx_hashes",
    "reconcile_from_chain",
]

Direction = Literal["in", "out"]
_SELECTOR_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
# Intents whose transaction may exist on chain: its receipt (or its absence) is evidence.
_SENT_STATUSES = (SettlementStatus.SIGNED.value, SettlementStatus.MINED.value, SettlementStatus.BOOKED.value)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExternalMovement(_Frozen):
    """One token Transfer into (`in`) or out of (`out`) the settlement wallet."""

    external_ref: str
    direction: Direction
    account: str  # the cash account it moves: cash:<network>:<token>:<wallet>
    counterparty: str  # the other address, lower-case (the zero address for mints and burns)
    asset: str
    amount_atomic: int = Field(ge=0)
    amount_nano_usd: int = Field(ge=0)
    tx_hash: str
    log_index: int = Field(ge=0)
    block_number: int = Field(ge=0)


class ObservedBalance(_Frozen):
    """The wallet's on-chain balance of one token at `block_number`, to tie out against its cash account."""

    account: str
    asset: str
    balance_atomic: int = Field(ge=0)
    balance_nano_usd: int = Field(ge=0)
    block_number: int = Field(ge=0)


class SettlementReceipt(_Frozen):
    """A settlement or withdrawal transaction we sent, as the chain has it (`found` False: no receipt)."""

    tx_hash: str
    found: bool
    status: int | None = None
    block_number: int | None = None
    gas_used: int | None = None
    effective_gas_price_wei: int | None = None
    gas_cost_wei: int | None = None


class ChainObservation(_Frozen):
    network: str
    settlement_wallet: str
    from_block: int = Field(ge=0)
    to_block: int = Field(ge=0)
    movements: tuple[ExternalMovement, ...]
    balances: tuple[ObservedBalance, ...]
    receipts: tuple[SettlementReceipt, ...]


async def load_settlement_tx_hashes(
    engine: AsyncEngine, *, network: str, from_block: int, to_block: int
) -> list[str]:
    """Transactions our x402 settlement intents sent: mined in the range, or sent and not known mined."""
    assert 0 <= from_block <= to_block
    table = x402_settlements
    statement = select(table.c.tx_hash, table.c.block_number).where(
        table.c.network == network,
        table.c.tx_hash.is_not(None),
        table.c.status.in_(_SENT_STATUSES),
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return sorted(
        {
            str(tx_hash).lower()
            for tx_hash, block_number in rows
            if block_number is None or from_block <= int(block_number) <= to_block
        }
    )


async def reconcile_from_chain(
    w3: Any,
    *,
    network: str,
    settlement_wallet: str,
    tokens: Sequence[WatchedToken],
    from_block: int,
    to_block: int | None = None,
    settlement_tx_hashes: Sequence[str] = (),
    engine: AsyncEngine | None = None,
    blocks_per_batch_max: int = 2_000,
    rpc_timeout_s: float = 10.0,
) -> ChainObservation:
    """Observes the chain over [from_block, to_block or head] for reconciliation.

    With `engine`, the receipts looked up include every settlement our x402 intents sent in the range,
    besides the `settlement_tx_hashes` given (e.g. withdrawals).
    """
    assert from_block >= 0
    assert tokens
    assert 0 < blocks_per_batch_max <= 100_000
    head = int(await bounded_rpc(w3.eth.block_number, "eth_blockNumber", timeout_s=rpc_timeout_s))
    last_block = head if to_block is None else to_block
    assert from_block <= last_block <= head, "the range must end at or before the chain head"
    wallet = settlement_wallet.lower()
    hashes = {h.lower() for h in settlement_tx_hashes}
    if engine is not None:
        hashes.update(
            await load_settlement_tx_hashes(
                engine, network=network, from_block=from_block, to_block=last_block
            )
        )
    movements: list[ExternalMovement] = []
    balances: list[ObservedBalance] = []
    for token in tokens:
        movements += await _movements(
            w3,
            token,
            network=network,
            wallet=wallet,
            from_block=from_block,
            to_block=last_block,
            batch=blocks_per_batch_max,
            timeout_s=rpc_timeout_s,
        )
        balances.append(
            await _balance(
                w3, token, network=network, wallet=wallet, block=last_block, timeout_s=rpc_timeout_s
            )
        )
    receipts = [await _receipt(w3, tx_hash, timeout_s=rpc_timeout_s) for tx_hash in sorted(hashes)]
    movements.sort(key=lambda m: (m.block_number, m.log_index, m.direction))
    return ChainObservation(
        network=network,
        settlement_wallet=wallet,
        from_block=from_block,
        to_block=last_block,
        movements=tuple(movements),
        balances=tuple(balances),
        receipts=tuple(receipts),
    )


async def _movements(
    w3: Any,
    token: WatchedToken,
    *,
    network: str,
    wallet: str,
    from_block: int,
    to_block: int,
    batch: int,
    timeout_s: float,
) -> list[ExternalMovement]:
    account = chart.cash(network, token.address, wallet)
    found: list[ExternalMovement] = []
    start = from_block
    while start <= to_block:
        end = min(start + batch - 1, to_block)
        incoming = await fetch_transfer_logs(
            w3, token.address, from_block=start, to_block=end, recipient=wallet, rpc_timeout_s=timeout_s
        )
        outgoing = await fetch_transfer_logs(
            w3, token.address, from_block=start, to_block=end, sender=wallet, rpc_timeout_s=timeout_s
        )
        found += [_movement(t, "in", account=account, network=network, token=token) for t in incoming]
        found += [_movement(t, "out", account=account, network=network, token=token) for t in outgoing]
        start = end + 1
    return found


def _movement(
    transfer: TransferLog, direction: Direction, *, account: str, network: str, token: WatchedToken
) -> ExternalMovement:
    return ExternalMovement(
        external_ref=transfer_external_ref(network, transfer.tx_hash, transfer.log_index),
        direction=direction,
        account=account,
        counterparty=transfer.sender if direction == "in" else transfer.recipient,
        asset=transfer.asset,
        amount_atomic=transfer.value_atomic,
        amount_nano_usd=atomic_to_nano_usd(transfer.value_atomic, decimals=token.decimals),
        tx_hash=transfer.tx_hash,
        log_index=transfer.log_index,
        block_number=transfer.block_number,
    )


async def _balance(
    w3: Any, token: WatchedToken, *, network: str, wallet: str, block: int, timeout_s: float
) -> ObservedBalance:
    call: Any = {
        "to": to_checksum_address(token.address),
        "data": HexBytes(_SELECTOR_BALANCE_OF + abi_encode(["address"], [to_checksum_address(wallet)])),
    }
    raw = await bounded_rpc(w3.eth.call(call, block), "eth_call", timeout_s=timeout_s)
    balance_atomic: int = abi_decode(["uint256"], bytes(raw))[0]
    return ObservedBalance(
        account=chart.cash(network, token.address, wallet),
        asset=token.address.lower(),
        balance_atomic=balance_atomic,
        balance_nano_usd=atomic_to_nano_usd(balance_atomic, decimals=token.decimals),
        block_number=block,
    )


async def _receipt(w3: Any, tx_hash: str, *, timeout_s: float) -> SettlementReceipt:
    try:
        receipt = await bounded_rpc(
            w3.eth.get_transaction_receipt(HexBytes(tx_hash)), "receipt", timeout_s=timeout_s
        )
    except ChainUnavailable as error:
        if isinstance(error.__cause__, TransactionNotFound):
            return SettlementReceipt(tx_hash=tx_hash, found=False)
        raise
    gas_used, price_wei = int(receipt["gasUsed"]), int(receipt["effectiveGasPrice"])
    return SettlementReceipt(
        tx_hash=tx_hash,
        found=True,
        status=int(receipt["status"]),
        block_number=int(receipt["blockNumber"]),
        gas_used=gas_used,
        effective_gas_price_wei=price_wei,
        gas_cost_wei=gas_used * price_wei,
    )
