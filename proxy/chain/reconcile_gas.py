"""The settlement wallet's native-coin spend over a block range, to tie out against the gas the ledger booked.

Every transaction the wallet sends takes the next account nonce, so the transactions it sent in
[from_block, to_block] are exactly those with nonces in [nonce after from_block - 1, nonce after to_block),
mined or reverted alike. Each such nonce is explained by one of our own records (an x402 settlement or a
withdrawal: their tables keep the hash and nonce of what they signed) or it is not; a nonce that no record
explains (a transaction sent with the key by anything else, or a record overwritten by a later attempt) is
found on chain by a binary search over blocks on the wallet's nonce. Each transaction's receipt gives
gasUsed × effectiveGasPrice: a `GasSpend` out of the wallet's native cash account under
`<network>:<tx hash>:gas`, the very reference `proxy.payments.booking.book_gas` books under. The matcher of
`ledger.reconcile` then pairs them: a transaction whose gas nobody booked is missing_in_ledger, a booking
that no transaction of the wallet explains is missing_on_chain, a different amount is amount_mismatch.

The wallet's life before MegaRouter sent anything from it (the demo deploys the test tokens from it) is not
ours to book: nonces used before the first block that any of our records or gas bookings names are left out.

Reading the wallet's nonce at past blocks needs the node's state of those blocks; a node that lacks it (a
pruned node, or Anvil restarted from a state file, as the demo is) answers with an error, and then the
range's blocks are read one by one instead (bounded concurrency), which needs no past state.
Imports: ledger, x402 (errors), proxy.db, proxy.payments.booking, proxy.chain.transfers; never
proxy.chain.reconcile (which imports this module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncEngine
from web3.exceptions import TransactionNotFound, Web3RPCError

from ledger import chart
from ledger.reconcile import Direction, ExternalMovement
from ledger.tables import ledger_metadata
from proxy.chain.transfers import bounded_rpc
from proxy.db.tables import account_withdrawals, x402_settlements
from proxy.payments.booking import SETTLEMENT_GAS_CODE, WITHDRAWAL_GAS_CODE, gas_external_ref
from x402.errors import ChainUnavailable

__all__ = ["GasReceipt", "GasSpend", "fetch_gas_receipt", "observe_gas_spends"]

_TRANSACTIONS = ledger_metadata.tables["ledger_transactions"]
_GAS_CODES = (SETTLEMENT_GAS_CODE, WITHDRAWAL_GAS_CODE)
_RECEIPT_LOOKUPS_CONCURRENT_MAX = 16


@dataclass(frozen=True, slots=True)
class GasReceipt:
    """The facts of a mined transaction that gas reconciliation needs."""

    tx_hash: str
    block_number: int
    reverted: bool
    gas_used: int
    effective_gas_price_wei: int


class GasSpend(ExternalMovement):
    """Gas one transaction of the settlement wallet paid, out of its native cash account.

    `amount_nano_usd` is in wei here: native cash and gas accounts count in wei (`ledger.chart.unit_for`).
    """

    tx_hash: str
    tx_nonce: int = Field(ge=0)
    block_number: int = Field(ge=0)
    reverted: bool
    gas_used: int = Field(ge=0)
    effective_gas_price_wei: int = Field(ge=0)


async def fetch_gas_receipt(w3: Any, tx_hash: str, *, timeout_s: float) -> GasReceipt | None:
    """The receipt's gas facts, or None while the chain knows no receipt for the hash."""
    try:
        receipt = await bounded_rpc(
            w3.eth.get_transaction_receipt(HexBytes(tx_hash)), "receipt", timeout_s=timeout_s
        )
    except ChainUnavailable as error:
        if isinstance(error.__cause__, TransactionNotFound):
            return None
        raise
    return GasReceipt(
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        reverted=int(receipt["status"]) != 1,
        gas_used=int(receipt["gasUsed"]),
        effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
    )


async def observe_gas_spends(
    w3: Any,
    engine: AsyncEngine,
    *,
    network: str,
    wallet: str,
    from_block: int,
    to_block: int,
    known_receipts: Mapping[str, GasReceipt],
    timeout_s: float,
) -> list[GasSpend]:
    """Every transaction the wallet sent in [from_block, to_block] since MegaRouter's first, with its gas.

    `known_receipts` (by lower-case hash) are receipts the caller already holds; others are fetched.
    """
    assert 0 <= from_block <= to_block + 1
    first_block = await _first_block_of_ours(engine, network=network)
    if first_block is None or first_block > to_block:
        return []
    start_block = max(from_block, first_block)
    try:
        sent = await _sent_by_nonce(
            w3,
            engine,
            network=network,
            wallet=wallet,
            from_block=start_block,
            to_block=to_block,
            known=known_receipts,
            timeout_s=timeout_s,
        )
    except _NoPastState:
        sent = await _sent_by_block_scan(
            w3, wallet, from_block=start_block, to_block=to_block, known=known_receipts, timeout_s=timeout_s
        )
    spends = [_gas_spend(receipt, network=network, wallet=wallet, tx_nonce=nonce) for nonce, receipt in sent]
    return [spend for spend in spends if spend is not None]


class _NoPastState(Exception):
    """The node answered a read at a past block with an error: it does not keep that block's state."""


async def _sent_by_nonce(
    w3: Any,
    engine: AsyncEngine,
    *,
    network: str,
    wallet: str,
    from_block: int,
    to_block: int,
    known: Mapping[str, GasReceipt],
    timeout_s: float,
) -> list[tuple[int, GasReceipt]]:
    """(nonce, receipt) of every transaction the wallet sent in the range, found through its nonce."""
    nonce_first = await _nonce_after(w3, wallet, from_block - 1, timeout_s=timeout_s)
    nonce_end = await _nonce_after(w3, wallet, to_block, timeout_s=timeout_s)
    nonces = range(nonce_first, nonce_end)
    receipts = await _receipts_of_our_records(
        w3, engine, network=network, nonces=nonces, known=known, timeout_s=timeout_s
    )
    sent: list[tuple[int, GasReceipt]] = []
    lowest_block = from_block
    for nonce in nonces:
        receipt = receipts.get(nonce)
        if receipt is None or not from_block <= receipt.block_number <= to_block:
            receipt = await _locate_by_nonce(
                w3, wallet, nonce, from_block=lowest_block, to_block=to_block, timeout_s=timeout_s
            )
        lowest_block = receipt.block_number  # Nonces are mined in order: the next one is no earlier.
        sent.append((nonce, receipt))
    return sent


async def _sent_by_block_scan(
    w3: Any,
    wallet: str,
    *,
    from_block: int,
    to_block: int,
    known: Mapping[str, GasReceipt],
    timeout_s: float,
) -> list[tuple[int, GasReceipt]]:
    """(nonce, receipt) of every transaction the wallet sent in the range, reading each block."""
    limit = asyncio.Semaphore(_RECEIPT_LOOKUPS_CONCURRENT_MAX)

    async def sent_in(block_number: int) -> list[tuple[int, str]]:
        async with limit:
            block = await bounded_rpc(
                w3.eth.get_block(block_number, True), "eth_getBlockByNumber", timeout_s=timeout_s
            )
        return [
            (int(tx["nonce"]), HexBytes(tx["hash"]).to_0x_hex().lower())
            for tx in block["transactions"]
            if str(tx["from"]).lower() == wallet.lower()
        ]

    per_block = await asyncio.gather(*(sent_in(b) for b in range(from_block, to_block + 1)))
    found = sorted(tx for block in per_block for tx in block)

    async def receipt_of(tx_hash: str) -> GasReceipt:
        if tx_hash in known:
            return known[tx_hash]
        async with limit:
            receipt = await fetch_gas_receipt(w3, tx_hash, timeout_s=timeout_s)
        assert receipt is not None, f"{tx_hash} is in a block and has no receipt"
        return receipt

    receipts = await asyncio.gather(*(receipt_of(tx_hash) for _, tx_hash in found))
    return [(nonce, receipt) for (nonce, _), receipt in zip(found, receipts, strict=True)]


def _gas_spend(receipt: GasReceipt, *, network: str, wallet: str, tx_nonce: int) -> GasSpend | None:
    gas_wei = receipt.gas_used * receipt.effective_gas_price_wei
    if gas_wei == 0:
        return None  # book_gas books nothing for free gas either.
    return GasSpend(
        external_ref=gas_external_ref(network, receipt.tx_hash),
        direction=Direction.OUT,
        account=chart.native_cash(network, wallet),
        amount_nano_usd=gas_wei,
        tx_hash=receipt.tx_hash.lower(),
        tx_nonce=tx_nonce,
        block_number=receipt.block_number,
        reverted=receipt.reverted,
        gas_used=receipt.gas_used,
        effective_gas_price_wei=receipt.effective_gas_price_wei,
    )


async def _nonce_after(w3: Any, wallet: str, block: int, *, timeout_s: float) -> int:
    """How many transactions the wallet had sent by the end of `block` (0 before the first block)."""
    if block < 0:
        return 0
    try:
        count = await bounded_rpc(
            w3.eth.get_transaction_count(to_checksum_address(wallet), block),
            "eth_getTransactionCount",
            timeout_s=timeout_s,
        )
    except ChainUnavailable as error:
        if isinstance(error.__cause__, Web3RPCError):
            raise _NoPastState(str(error)) from error
        raise  # Unreachable or too slow: a real outage, not a node without history.
    return int(count)


async def _first_block_of_ours(engine: AsyncEngine, *, network: str) -> int | None:
    """The earliest block any of our settlement or withdrawal transactions was mined in, reverted or not."""
    blocks: list[int] = []
    async with engine.connect() as connection:
        for table in (x402_settlements, account_withdrawals):
            first = await connection.execute(
                sa.select(sa.func.min(table.c.block_number)).where(table.c.network == network)
            )
            value = first.scalar_one_or_none()
            if value is not None:
                blocks.append(int(value))
        # A record's block is overwritten when its authorization is settled again; the gas booking of the
        # earlier transaction keeps its block.
        rows = await connection.execute(
            sa.select(_TRANSACTIONS.c.metadata_json).where(_TRANSACTIONS.c.code.in_(_GAS_CODES))
        )
        for (metadata,) in rows:
            block = (metadata or {}).get("block_number")
            if isinstance(block, int):
                blocks.append(block)
    return min(blocks) if blocks else None


async def _receipts_of_our_records(
    w3: Any,
    engine: AsyncEngine,
    *,
    network: str,
    nonces: range,
    known: Mapping[str, GasReceipt],
    timeout_s: float,
) -> dict[int, GasReceipt]:
    """Receipts of the transactions our tables say were signed with these nonces, where mined."""
    candidates: list[tuple[int, str]] = []
    async with engine.connect() as connection:
        for table in (x402_settlements, account_withdrawals):
            rows = await connection.execute(
                sa.select(table.c.tx_nonce, table.c.tx_hash).where(
                    table.c.network == network,
                    table.c.tx_hash.is_not(None),
                    table.c.tx_nonce >= nonces.start,
                    table.c.tx_nonce < nonces.stop,
                )
            )
            candidates += [(int(nonce), str(tx_hash).lower()) for nonce, tx_hash in rows]
    limit = asyncio.Semaphore(_RECEIPT_LOOKUPS_CONCURRENT_MAX)

    async def one(tx_hash: str) -> GasReceipt | None:
        if tx_hash in known:
            return known[tx_hash]
        async with limit:
            return await fetch_gas_receipt(w3, tx_hash, timeout_s=timeout_s)

    found = await asyncio.gather(*(one(tx_hash) for _, tx_hash in candidates))
    # A nonce may have been signed into several transactions (a send that failed, then a fresh one):
    # only the one the chain mined has a receipt.
    return {nonce: receipt for (nonce, _), receipt in zip(candidates, found, strict=True) if receipt}


async def _locate_by_nonce(
    w3: Any, wallet: str, nonce: int, *, from_block: int, to_block: int, timeout_s: float
) -> GasReceipt:
    """The wallet's transaction with this nonce, mined in [from_block, to_block]: binary search for the
    first block after which the wallet's nonce exceeds it, then that block's transactions."""
    low, high = from_block, to_block
    while low < high:
        middle = (low + high) // 2
        if await _nonce_after(w3, wallet, middle, timeout_s=timeout_s) > nonce:
            high = middle
        else:
            low = middle + 1
    block = await bounded_rpc(w3.eth.get_block(low, True), "eth_getBlockByNumber", timeout_s=timeout_s)
    tx_hash = _find_sent(block["transactions"], wallet, nonce)
    assert tx_hash is not None, f"nonce {nonce} of {wallet} was used in block {low}, but no transaction there"
    receipt = await fetch_gas_receipt(w3, tx_hash, timeout_s=timeout_s)
    assert receipt is not None, f"{tx_hash} is in block {low} and has no receipt"
    return receipt


def _find_sent(transactions: Sequence[Any], wallet: str, nonce: int) -> str | None:
    for tx in transactions:
        if str(tx["from"]).lower() == wallet.lower() and int(tx["nonce"]) == nonce:
            return HexBytes(tx["hash"]).to_0x_hex()
    return None
