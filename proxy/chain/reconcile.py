"""Chain reconciliation of the settlement wallet: observe the chain, scope the ledger side, match, store.

`reconcile_from_chain` reads, over a block range, every token `Transfer` to and from the settlement wallet,
the receipts of our settlement and withdrawal transactions, and the wallet's token balances at the range's
last block. It writes nothing. Movements and balances are the ledger's own reconciliation inputs
(`ledger.reconcile.ExternalMovement`, `ObservedBalance`), extended with the chain facts an operator needs
(counterparty, atomic amount, block): `ChainMovement`, `ChainBalance`. Their external_ref is exactly the
bookings' `<network>:<tx hash>:<log index>` (`proxy.chain.transfers.transfer_external_ref`).

`reconcile_settlement_wallet` is one run: it observes the range, keeps only the ledger entries that belong
to it, sets aside the unconfirmed tail the chain watcher has not booked yet, and hands both sides to
`ledger.reconcile.reconcile_and_record`, which matches each movement to exactly one booking and back, ties
each cash account to the on-chain balance, checks in_transit ageing and overdue holds, and stores the run
with its breaks. With no `from_block` it resumes after the last clean run of the same wallet, so a range
with breaks is examined again until it is clean.

Gas: with the database at hand, the range's transactions sent by the wallet (settlements, withdrawals,
reverted ones, and anything else sent with its key) are observed too (`proxy.chain.reconcile_gas`), each as a
movement of gasUsed × effectiveGasPrice wei out of the wallet's native cash account, and matched against
the gas bookings (`expense:gas:<network>` against native cash, referenced `<network>:<tx hash>:gas`) like
token movements are: native-coin spend that nobody booked is a break. The native balance itself is not
tied out, since coins sent to the wallet for gas are not booked. Self-transfers (wallet to wallet) move
nothing and zero-value transfers carry nothing; both are left out.

Imports: ledger, x402 (errors) and proxy modules; never aiohttp handlers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from web3.exceptions import TransactionNotFound

from ledger import Ledger, chart
from ledger.reconcile import (
    RUNS_LIST_MAX,
    Break,
    Direction,
    ExternalMovement,
    LedgerMovement,
    ObservedBalance,
    ReconcileRun,
    gather_ledger_side,
    list_runs,
    reconcile_and_record,
)
from ledger.tables import ledger_metadata
from proxy.accounts.withdrawals import WithdrawalStatus
from proxy.chain.reconcile_gas import GasReceipt, GasSpend, observe_gas_spends
from proxy.chain.transfers import TransferLog, bounded_rpc, fetch_transfer_logs, transfer_external_ref
from proxy.chain.watcher import WatchedToken
from proxy.db.tables import account_withdrawals, x402_settlements
from proxy.money import atomic_to_nano_usd
from proxy.payments.intents import SettlementStatus
from x402.errors import ChainUnavailable

__all__ = [
    "BalanceTieOut",
    "ChainBalance",
    "ChainMovement",
    "ChainObservation",
    "GasTieOut",
    "ReceiptSummary",
    "ReconcileReport",
    "ReconcileScope",
    "SettlementReceipt",
    "load_settlement_tx_hashes",
    "load_withdrawal_tx_hashes",
    "reconcile_from_chain",
    "reconcile_settlement_wallet",
    "resume_block",
]

_SELECTOR_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
# Intents whose transaction may exist on chain: its receipt (or its absence) is evidence.
_SENT_STATUSES = (SettlementStatus.SIGNED.value, SettlementStatus.MINED.value, SettlementStatus.BOOKED.value)
_WITHDRAWAL_SENT_STATUSES = (WithdrawalStatus.SENT, WithdrawalStatus.COMPLETED)
# A failed record with a block names a transaction that was mined and reverted: its receipt is evidence too.
# An `upto` settlement that reverted after serving is `lost` (booked as a loss), with its block the same way.
_SETTLEMENT_FAILED = (SettlementStatus.FAILED.value, SettlementStatus.LOST.value)
_WITHDRAWAL_FAILED = WithdrawalStatus.FAILED
_TRANSACTIONS = ledger_metadata.tables["ledger_transactions"]
# `<network>:<tx hash>:<log index>` (a token movement) or `<network>:<tx hash>:gas` (the gas a transaction
# of the wallet paid); the network is a CAIP-2 id or a v1 name.
_REF_PATTERN = re.compile(r"^(?P<network>.+):(?P<tx>0x[0-9a-f]{64}):(?P<log>[0-9]{1,9}|gas)$")
# Receipt look-ups for bookings the range did not explain run this many at a time: bounded, not serial.
_RECEIPT_LOOKUPS_CONCURRENT_MAX = 16


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChainMovement(ExternalMovement):
    """One token Transfer into (`in`) or out of (`out`) the settlement wallet, with its chain facts."""

    counterparty: str  # the other address, lower-case (the zero address for mints and burns)
    asset: str
    amount_atomic: int = Field(gt=0)
    tx_hash: str
    log_index: int = Field(ge=0)
    block_number: int = Field(ge=0)


class ChainBalance(ObservedBalance):
    """The wallet's on-chain balance of one token at `block_number`, to tie out against its cash account."""

    asset: str
    balance_atomic: int = Field(ge=0)
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
    movements: tuple[ChainMovement, ...]
    balances: tuple[ChainBalance, ...]
    receipts: tuple[SettlementReceipt, ...]
    # Every transaction the wallet sent in the range since MegaRouter's first (observed with a database).
    gas_spends: tuple[GasSpend, ...] = ()


class ReconcileScope(_Frozen):
    """What one wallet's reconciliation needs besides the chain and the database."""

    network: str = Field(pattern=r"^eip155:[0-9]{1,32}$")
    settlement_wallet: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    tokens: tuple[WatchedToken, ...] = Field(min_length=1)
    # Movements in the last `confirmations` blocks that are not booked yet are pending, not breaks: the
    # chain watcher books a transfer only once it has this many confirmations.
    confirmations: int = Field(default=3, ge=0, le=10_000)
    in_transit_max_age_s: int = Field(default=3_600, gt=0)
    hold_grace_s: int = Field(default=60, ge=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0, le=300)
    blocks_per_batch_max: int = Field(default=2_000, ge=1, le=100_000)


class BalanceTieOut(_Frozen):
    account: str
    asset: str
    chain_nano_usd: int
    pending_nano_usd: int  # signed sum of the unconfirmed, not yet booked movements
    ledger_nano_usd: int


class GasTieOut(_Frozen):
    """The wallet's native-coin spend on gas in the range, on chain and as booked (wei)."""

    account: str
    transactions: int
    reverted: int
    pending: int  # mined in the unconfirmed tail and not booked yet: left for a later run
    chain_gas_wei: int
    booked_gas_wei: int


class ReceiptSummary(_Frozen):
    looked_up: int
    reverted: tuple[str, ...]
    not_found: tuple[str, ...]


class ReconcileReport(_Frozen):
    run: ReconcileRun
    network: str
    settlement_wallet: str
    from_block: int
    to_block: int
    head_block: int
    movements_count: int
    matched_count: int
    out_of_range_bookings: int
    balances_tied_out: bool  # False when the range ends before the head (balances are read at the head)
    balances: tuple[BalanceTieOut, ...]
    pending: tuple[ChainMovement, ...]
    receipts: ReceiptSummary
    gas: GasTieOut
    breaks: tuple[Break, ...]

    @property
    def clean(self) -> bool:
        return not self.breaks


async def load_settlement_tx_hashes(
    engine: AsyncEngine, *, network: str, from_block: int, to_block: int
) -> list[str]:
    """Transactions our x402 settlement intents sent: mined in the range, or sent and not known mined."""
    table = x402_settlements
    statement = sa.select(table.c.tx_hash, table.c.block_number).where(
        table.c.network == network,
        table.c.tx_hash.is_not(None),
        sa.or_(
            table.c.status.in_(_SENT_STATUSES),
            sa.and_(table.c.status.in_(_SETTLEMENT_FAILED), table.c.block_number.is_not(None)),
        ),
    )
    return await _hashes_in_range(engine, statement, from_block=from_block, to_block=to_block)


async def load_withdrawal_tx_hashes(
    engine: AsyncEngine, *, network: str, from_block: int, to_block: int
) -> list[str]:
    """Withdrawal transfers we sent: mined in the range, or sent and not known mined."""
    table = account_withdrawals
    statement = sa.select(table.c.tx_hash, table.c.block_number).where(
        table.c.network == network,
        table.c.tx_hash.is_not(None),
        sa.or_(
            table.c.status.in_(_WITHDRAWAL_SENT_STATUSES),
            sa.and_(table.c.status == _WITHDRAWAL_FAILED, table.c.block_number.is_not(None)),
        ),
    )
    return await _hashes_in_range(engine, statement, from_block=from_block, to_block=to_block)


async def _hashes_in_range(
    engine: AsyncEngine, statement: sa.Select[Any], *, from_block: int, to_block: int
) -> list[str]:
    assert from_block >= 0
    assert from_block <= to_block + 1, "an empty range is from_block == to_block + 1"
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
    """Observes the chain over [from_block, to_block or head] for reconciliation (empty when from > to).

    With `engine`, the receipts looked up include every settlement our x402 intents and withdrawals sent
    in the range, besides the `settlement_tx_hashes` given, and the gas of every transaction the wallet
    sent in the range is observed.
    """
    assert from_block >= 0
    assert tokens
    assert 0 < blocks_per_batch_max <= 100_000
    head = int(await bounded_rpc(w3.eth.block_number, "eth_blockNumber", timeout_s=rpc_timeout_s))
    last_block = head if to_block is None else to_block
    assert last_block <= head, "the range must end at or before the chain head"
    assert from_block <= last_block + 1, "an empty range is from_block == to_block + 1"
    wallet = settlement_wallet.lower()
    hashes = {h.lower() for h in settlement_tx_hashes}
    if engine is not None:
        for load in (load_settlement_tx_hashes, load_withdrawal_tx_hashes):
            hashes.update(await load(engine, network=network, from_block=from_block, to_block=last_block))
    movements: list[ChainMovement] = []
    balances: list[ChainBalance] = []
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
    receipts = await _receipts(w3, sorted(hashes), timeout_s=rpc_timeout_s)
    movements.sort(key=lambda m: (m.block_number, m.log_index, m.direction))
    gas_spends: list[GasSpend] = []
    if engine is not None:
        gas_spends = await observe_gas_spends(
            w3,
            engine,
            network=network,
            wallet=wallet,
            from_block=from_block,
            to_block=last_block,
            known_receipts=_gas_receipts(receipts),
            timeout_s=rpc_timeout_s,
        )
    return ChainObservation(
        network=network,
        settlement_wallet=wallet,
        from_block=from_block,
        to_block=last_block,
        movements=tuple(movements),
        balances=tuple(balances),
        receipts=tuple(receipts),
        gas_spends=tuple(gas_spends),
    )


def _gas_receipts(receipts: Sequence[SettlementReceipt]) -> dict[str, GasReceipt]:
    return {
        r.tx_hash.lower(): GasReceipt(
            tx_hash=r.tx_hash,
            block_number=r.block_number,
            reverted=r.status != 1,
            gas_used=r.gas_used,
            effective_gas_price_wei=r.effective_gas_price_wei,
        )
        for r in receipts
        if r.found
        and r.block_number is not None
        and r.gas_used is not None
        and r.effective_gas_price_wei is not None
    }


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
) -> list[ChainMovement]:
    account = chart.cash(network, token.address, wallet)
    found: list[ChainMovement] = []
    start = from_block
    while start <= to_block:
        end = min(start + batch - 1, to_block)
        incoming = await fetch_transfer_logs(
            w3, token.address, from_block=start, to_block=end, recipient=wallet, rpc_timeout_s=timeout_s
        )
        outgoing = await fetch_transfer_logs(
            w3, token.address, from_block=start, to_block=end, sender=wallet, rpc_timeout_s=timeout_s
        )
        # A self-transfer appears in both lists and nets to zero; a zero-value one moves nothing.
        found += [
            _movement(t, Direction.IN, account=account, network=network, token=token)
            for t in incoming
            if t.sender != wallet and t.value_atomic > 0
        ]
        found += [
            _movement(t, Direction.OUT, account=account, network=network, token=token)
            for t in outgoing
            if t.recipient != wallet and t.value_atomic > 0
        ]
        start = end + 1
    return found


def _movement(
    transfer: TransferLog, direction: Direction, *, account: str, network: str, token: WatchedToken
) -> ChainMovement:
    return ChainMovement(
        external_ref=transfer_external_ref(network, transfer.tx_hash, transfer.log_index),
        direction=direction,
        account=account,
        counterparty=transfer.sender if direction is Direction.IN else transfer.recipient,
        asset=transfer.asset,
        amount_atomic=transfer.value_atomic,
        amount_nano_usd=atomic_to_nano_usd(transfer.value_atomic, decimals=token.decimals),
        tx_hash=transfer.tx_hash,
        log_index=transfer.log_index,
        block_number=transfer.block_number,
    )


async def _balance(
    w3: Any, token: WatchedToken, *, network: str, wallet: str, block: int, timeout_s: float
) -> ChainBalance:
    call: Any = {
        "to": to_checksum_address(token.address),
        "data": HexBytes(_SELECTOR_BALANCE_OF + abi_encode(["address"], [to_checksum_address(wallet)])),
    }
    raw = await bounded_rpc(w3.eth.call(call, block), "eth_call", timeout_s=timeout_s)
    balance_atomic: int = abi_decode(["uint256"], bytes(raw))[0]
    return ChainBalance(
        account=chart.cash(network, token.address, wallet),
        asset=token.address.lower(),
        balance_atomic=balance_atomic,
        balance_nano_usd=atomic_to_nano_usd(balance_atomic, decimals=token.decimals),
        block_number=block,
    )


async def _receipts(w3: Any, tx_hashes: Sequence[str], *, timeout_s: float) -> list[SettlementReceipt]:
    """Receipts of many transactions, at most `_RECEIPT_LOOKUPS_CONCURRENT_MAX` in flight at once."""
    limit = asyncio.Semaphore(_RECEIPT_LOOKUPS_CONCURRENT_MAX)

    async def one(tx_hash: str) -> SettlementReceipt:
        async with limit:
            return await _receipt(w3, tx_hash, timeout_s=timeout_s)

    return list(await asyncio.gather(*(one(tx_hash) for tx_hash in tx_hashes)))


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


# ---------------------------------------------------------------------------------------------- one run


async def resume_block(engine: AsyncEngine, *, network: str, settlement_wallet: str) -> int:
    """Where a run with no `from_block` starts: after the last clean run of this wallet, else block 0.

    A run with breaks does not move the start, so its range is examined again until it comes out clean.
    """
    for run in await list_runs(engine, limit=RUNS_LIST_MAX):
        meta = run.metadata
        if (
            run.breaks_count == 0
            and meta.get("network") == network
            and meta.get("settlement_wallet") == settlement_wallet.lower()
            and isinstance(meta.get("resume_from_block"), int)
        ):
            resume: int = meta["resume_from_block"]
            assert resume >= 0
            return resume
    return 0


async def reconcile_settlement_wallet(
    w3: Any,
    ledger: Ledger,
    scope: ReconcileScope,
    *,
    from_block: int | None = None,
    to_block: int | None = None,
    now_unix_ms: int,
) -> ReconcileReport:
    """One reconciliation run over [from_block, to_block] (defaults: resume point, head); stored."""
    engine = ledger.engine
    wallet = scope.settlement_wallet.lower()
    head = int(await bounded_rpc(w3.eth.block_number, "eth_blockNumber", timeout_s=scope.rpc_timeout_s))
    last_block = head if to_block is None else to_block
    first_block = (
        await resume_block(engine, network=scope.network, settlement_wallet=wallet)
        if from_block is None
        else from_block
    )
    # A resume point past the head (a chain restarted from scratch) starts over from the first block.
    first_block = 0 if first_block > last_block + 1 else first_block
    observation = await reconcile_from_chain(
        w3,
        network=scope.network,
        settlement_wallet=wallet,
        tokens=scope.tokens,
        from_block=first_block,
        to_block=last_block,
        engine=engine,
        blocks_per_batch_max=scope.blocks_per_batch_max,
        rpc_timeout_s=scope.rpc_timeout_s,
    )
    native_account = chart.native_cash(scope.network, wallet)
    cash_accounts = [balance.account for balance in observation.balances]
    booked_all = await gather_ledger_side(engine, [*cash_accounts, native_account])
    booked, out_of_range = await _scope_ledger_side(
        w3, engine, observation=observation, booked=booked_all, timeout_s=scope.rpc_timeout_s
    )
    booked_keys = {(b.external_ref, b.account) for b in booked}
    confirmed_head = head - scope.confirmations
    pending = tuple(
        m
        for m in observation.movements
        if m.block_number > confirmed_head and (m.external_ref, m.account) not in booked_keys
    )
    # Gas is booked as soon as a receipt is seen, but a live request may sit between the two.
    pending_gas = [
        g
        for g in observation.gas_spends
        if g.block_number > confirmed_head and (g.external_ref, g.account) not in booked_keys
    ]
    pending_refs = {m.external_ref for m in pending} | {g.external_ref for g in pending_gas}
    external: list[ExternalMovement] = [
        m for m in [*observation.movements, *observation.gas_spends] if m.external_ref not in pending_refs
    ]
    tie_out = last_block == head
    observed = [_less_pending(b, pending) for b in observation.balances] if tie_out else []
    in_transit = [
        a.name for a in await ledger.accounts() if a.name.startswith(f"in_transit:{scope.network}:")
    ]
    receipts = _receipt_summary(observation.receipts)
    pending_blocks = [m.block_number for m in pending] + [g.block_number for g in pending_gas]
    resume_from = min([*pending_blocks, last_block + 1])
    run, result = await reconcile_and_record(
        ledger,
        external=external,
        observed_balances=observed,
        in_transit_accounts=in_transit,
        now_unix_ms=now_unix_ms,
        in_transit_max_age_s=scope.in_transit_max_age_s,
        hold_grace_s=scope.hold_grace_s,
        booked=booked,
        metadata={
            "network": scope.network,
            "settlement_wallet": wallet,
            "from_block": first_block,
            "to_block": last_block,
            "head_block": head,
            "resume_from_block": resume_from,
            "pending_count": len(pending),
            "out_of_range_bookings": out_of_range,
            "balances_tied_out": tie_out,
            "receipts": receipts.model_dump(mode="json"),
            "gas_transactions": len(observation.gas_spends),
        },
    )
    ledger_balances = {b.account: b.posted for b in await ledger.balances()}
    return ReconcileReport(
        run=run,
        network=scope.network,
        settlement_wallet=wallet,
        from_block=first_block,
        to_block=last_block,
        head_block=head,
        movements_count=len(external),
        matched_count=len(result.matched),
        out_of_range_bookings=out_of_range,
        balances_tied_out=tie_out,
        balances=tuple(
            BalanceTieOut(
                account=b.account,
                asset=b.asset,
                chain_nano_usd=b.balance_nano_usd,
                pending_nano_usd=sum(m.signed_nano_usd for m in pending if m.account == b.account),
                ledger_nano_usd=ledger_balances.get(b.account, 0),
            )
            for b in observation.balances
        ),
        pending=pending,
        receipts=receipts,
        gas=_gas_tie_out(native_account, observation.gas_spends, booked, pending=len(pending_gas)),
        breaks=result.breaks,
    )


def _gas_tie_out(
    native_account: str, spends: Sequence[GasSpend], booked: Sequence[LedgerMovement], *, pending: int
) -> GasTieOut:
    """Gas spent on chain vs. gas booked, both in the range (bookings of other ranges are left out)."""
    return GasTieOut(
        account=native_account,
        transactions=len(spends),
        reverted=sum(1 for g in spends if g.reverted),
        pending=pending,
        chain_gas_wei=sum(g.amount_nano_usd for g in spends),
        booked_gas_wei=-sum(
            b.amount_nano_usd
            for b in booked
            if b.account == native_account and b.external_ref and b.external_ref.endswith(":gas")
        ),
    )


def _less_pending(balance: ChainBalance, pending: Iterable[ChainMovement]) -> ObservedBalance:
    """The on-chain balance without the movements the watcher may not have booked yet."""
    pending_nano_usd = sum(m.signed_nano_usd for m in pending if m.account == balance.account)
    return ObservedBalance(
        account=balance.account, balance_nano_usd=balance.balance_nano_usd - pending_nano_usd
    )


def _receipt_summary(receipts: Sequence[SettlementReceipt]) -> ReceiptSummary:
    return ReceiptSummary(
        looked_up=len(receipts),
        reverted=tuple(r.tx_hash for r in receipts if r.found and r.status == 0),
        not_found=tuple(r.tx_hash for r in receipts if not r.found),
    )


async def _scope_ledger_side(
    w3: Any,
    engine: AsyncEngine,
    *,
    observation: ChainObservation,
    booked: Sequence[LedgerMovement],
    timeout_s: float,
) -> tuple[list[LedgerMovement], int]:
    """The booked cash entries that belong to the observed range, and how many were left out.

    Entries whose external_ref names a movement of the range are kept (refs compared in canonical,
    lower-case form). So is an entry whose ref names no transaction the chain has, or a transaction in the
    range (it is missing on chain), and one without a ref (it only counts in the balance). An entry whose
    transaction was mined outside the range was (or will be) reconciled by another run and is left out.
    An entry naming a transaction of the range whose movement is already booked by another entry is
    re-keyed to that movement, so the matcher reports the transfer as booked twice (a duplicate).
    """
    seen: list[ChainMovement | GasSpend] = [*observation.movements, *observation.gas_spends]
    on_chain = {(m.external_ref, m.account): m for m in seen}
    canonical = [b.model_copy(update={"external_ref": _canonical_ref(b.external_ref)}) for b in booked]
    unexplained = [
        b for b in canonical if b.external_ref is not None and (b.external_ref, b.account) not in on_chain
    ]
    blocks = await _known_blocks(engine, observation, unexplained)
    unknown = sorted({tx for b in unexplained if (tx := _ref_tx_hash(b.external_ref)) and tx not in blocks})
    for receipt in await _receipts(w3, unknown, timeout_s=timeout_s):
        if receipt.found and receipt.block_number is not None:
            blocks[receipt.tx_hash] = receipt.block_number
    booked_keys = {(b.external_ref, b.account) for b in canonical}
    kept: list[LedgerMovement] = []
    left_out = 0
    for entry in canonical:
        tx_hash = _ref_tx_hash(entry.external_ref)
        if entry.external_ref is None or (entry.external_ref, entry.account) in on_chain or tx_hash is None:
            kept.append(entry)
            continue
        block = blocks.get(tx_hash)
        if block is not None and not observation.from_block <= block <= observation.to_block:
            left_out += 1
            continue
        twin = _booked_twin(entry, tx_hash, on_chain.values(), booked_keys)
        kept.append(entry if twin is None else entry.model_copy(update={"external_ref": twin}))
    assert len(kept) + left_out == len(booked)
    return kept, left_out


def _booked_twin(
    entry: LedgerMovement,
    tx_hash: str,
    movements: Iterable[ChainMovement | GasSpend],
    booked_keys: set[tuple[str | None, str]],
) -> str | None:
    """The ref of a booked movement of the same transaction and account, preferring the same amount."""
    twins = [
        m
        for m in movements
        if m.tx_hash == tx_hash and m.account == entry.account and (m.external_ref, m.account) in booked_keys
    ]
    twins.sort(key=lambda m: m.signed_nano_usd != entry.amount_nano_usd)
    return twins[0].external_ref if twins else None


def _canonical_ref(external_ref: str | None) -> str | None:
    # Refs are written lower-case; a differently spelled copy of one must still name the same transfer.
    return None if external_ref is None else external_ref.strip().lower()


def _ref_tx_hash(external_ref: str | None) -> str | None:
    if external_ref is None:
        return None
    found = _REF_PATTERN.match(external_ref)
    return None if found is None else found.group("tx")


async def _known_blocks(
    engine: AsyncEngine, observation: ChainObservation, entries: Sequence[LedgerMovement]
) -> dict[str, int]:
    """Blocks of transactions as our own records have them, so most scoping needs no RPC call."""
    blocks: dict[str, int] = {
        r.tx_hash.lower(): r.block_number
        for r in observation.receipts
        if r.found and r.block_number is not None
    }
    wanted = {tx for e in entries if (tx := _ref_tx_hash(e.external_ref))}
    if not wanted:
        return blocks
    ids = sorted({e.transaction_id for e in entries})
    async with engine.connect() as connection:
        for table in (x402_settlements, account_withdrawals):
            rows = await connection.execute(
                sa.select(table.c.tx_hash, table.c.block_number).where(
                    table.c.tx_hash.is_not(None), table.c.block_number.is_not(None)
                )
            )
            blocks.update({str(tx).lower(): int(block) for tx, block in rows if str(tx).lower() in wanted})
        for chunk_start in range(0, len(ids), 500):
            metadata_rows = await connection.execute(
                sa.select(_TRANSACTIONS.c.metadata_json).where(
                    _TRANSACTIONS.c.id.in_(ids[chunk_start : chunk_start + 500])
                )
            )
            for (metadata,) in metadata_rows:
                blocks.update(_metadata_block(metadata, wanted))
    return blocks


def _metadata_block(metadata: Mapping[str, Any] | None, wanted: set[str]) -> dict[str, int]:
    """The watcher records `tx_hash` and `block_number` with each deposit it books."""
    if not metadata:
        return {}
    tx_hash, block = metadata.get("tx_hash"), metadata.get("block_number")
    if isinstance(tx_hash, str) and isinstance(block, int) and tx_hash.lower() in wanted:
        return {tx_hash.lower(): block}
    return {}
