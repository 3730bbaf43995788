"""Finishes withdrawals a crash (or a stalled chain) left open, at start-up and then periodically.

Mirrors proxy/payments/recovery.py for settlement intents. Per state of an open withdrawal:

- `held` (never signed, so never sent) → the hold is voided and the record failed (`never_signed`).
- `voiding` (a release was decided, the void may not have happened) → the void is finished (idempotent).
- `sent` (signed and stored before sending) → `Settler.recover_transfer` reads the chain:
  - a successful receipt → booked exactly as the live path books it (capture + in_transit → cash);
  - unknown, its transaction nonce still free → the very same raw transaction is rebroadcast (or awaited
    when the node still holds it), then booked;
  - reverted → the hold is voided (`reverted`: nothing moved);
  - its transaction nonce taken by another transaction → it can never be mined; Settler would send a fresh
    transfer then, but recovery refuses (its `before_send` raises, and an InsufficientFunds from the
    re-check counts the same), asks the chain once more (a receipt that appeared between the Settler's two
    reads wins) and only then voids the hold (`never_mined`). The wallet may simply ask again.
  - chain unreachable or no receipt within the bound → left open for the next pass.

Every step is idempotent and every status change a compare-and-set, so running this twice, in two
processes at once, or beside the live request, books once and sends at most one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from pydantic import BaseModel

from ledger import InsufficientFunds as LedgerInsufficientFunds
from proxy.accounts.withdrawals import WithdrawalRecord, Withdrawals, WithdrawalStatus
from x402.errors import ChainUnavailable, InsufficientFunds, SettlementPending, TransactionFailed, X402Error
from x402.settle import RecoveredTransfer, Settler, SignedSettlement

__all__ = [
    "WITHDRAWAL_RECOVERY_BATCH_MAX",
    "WITHDRAWAL_RECOVERY_INTERVAL_S",
    "WithdrawalRecoveryReport",
    "periodic_withdrawal_recovery",
    "recover_withdrawals",
]

log = structlog.get_logger("megarouter.withdrawal_recovery")
WITHDRAWAL_RECOVERY_INTERVAL_S = 30.0
WITHDRAWAL_RECOVERY_BATCH_MAX = 100


class WithdrawalRecoveryReport(BaseModel):
    booked: int = 0
    released: int = 0
    pending: int = 0


class _ResendRefused(Exception):
    """Settler.recover_transfer reached its fresh-transfer path: the stored transaction can never be mined."""


async def _refuse_resend(signed: SignedSettlement) -> None:
    raise _ResendRefused(f"stored transfer replaced by {signed.tx_hash}; not sending a second one")


async def _recover_sent_once(
    settler: Settler, record: WithdrawalRecord, signed: SignedSettlement
) -> RecoveredTransfer | None:
    """The recovered transfer, or None when Settler found the stored one can never be mined."""
    try:
        return await settler.recover_transfer(
            record.asset, record.destination, record.amount_atomic, signed, before_send=_refuse_resend
        )
    except _ResendRefused:
        return None
    except InsufficientFunds:
        # Only the fresh-transfer path re-checks the wallet's balance: same verdict, nothing was signed.
        return None


async def _finish_sent(
    withdrawals: Withdrawals, settler: Settler, record: WithdrawalRecord
) -> WithdrawalRecord:
    signed = await withdrawals.signed_transfer(record)
    recovered = await _recover_sent_once(settler, record, signed)
    if recovered is None:
        # The Settler read "no receipt" before it read "nonce confirmed": if ours is what got mined in
        # between, its receipt is visible now. Only a second "never minable" is final.
        recovered = await _recover_sent_once(settler, record, signed)
    if recovered is None:
        return await withdrawals.release(record, reason="never_mined", detail=signed.tx_hash)
    log.info(
        "withdrawal_recovered",
        withdrawal_id=record.id,
        method=recovered.recovered_by,
        tx_hash=recovered.result.tx_hash,
    )
    return await withdrawals.book(record, recovered.result)


async def _recover_one(
    withdrawals: Withdrawals, settler: Settler, record: WithdrawalRecord
) -> WithdrawalRecord:
    if record.status == WithdrawalStatus.HELD:
        return await withdrawals.release(record, reason="never_signed")
    if record.status == WithdrawalStatus.VOIDING:
        return await withdrawals.release(record, reason=record.error_reason or "voiding")
    assert record.status == WithdrawalStatus.SENT, record.status
    try:
        return await _finish_sent(withdrawals, settler, record)
    except TransactionFailed as error:
        await withdrawals.book_reverted_gas(record, error)
        return await withdrawals.release(record, reason="reverted", detail=str(error))


async def recover_withdrawals(
    *,
    withdrawals: Withdrawals,
    settler: Settler,
    older_than_s: float = 0.0,
    limit: int = WITHDRAWAL_RECOVERY_BATCH_MAX,
) -> WithdrawalRecoveryReport:
    """One pass over open withdrawals untouched for `older_than_s` (0 at start-up: before serving)."""
    assert older_than_s >= 0
    assert withdrawals.sender is None or withdrawals.sender.address.lower() == settler.address.lower()
    report = WithdrawalRecoveryReport()
    for record in await withdrawals.unfinished(older_than_s=older_than_s, limit=limit):
        try:
            finished = await _recover_one(withdrawals, settler, record)
        except (SettlementPending, ChainUnavailable, X402Error) as error:
            # The outcome is still unknown (or the chain unreachable): the next pass tries again.
            log.warning("withdrawal_recovery_pending", withdrawal_id=record.id, reason=error.reason)
            report.pending += 1
            continue
        except LedgerInsufficientFunds:
            # Mined after its hold expired, and the credit is spent: an operator's break, never hidden.
            log.error("withdrawal_mined_after_credit_spent", withdrawal_id=record.id)
            report.pending += 1
            continue
        if finished.status == WithdrawalStatus.COMPLETED:
            report.booked += 1
        elif finished.status == WithdrawalStatus.FAILED:
            report.released += 1
        else:
            report.pending += 1
    if report != WithdrawalRecoveryReport():
        log.info("withdrawals_recovery_done", **report.model_dump())
    return report


@contextlib.asynccontextmanager
async def periodic_withdrawal_recovery(
    run_pass: Callable[[], Awaitable[object]], *, interval_s: float = WITHDRAWAL_RECOVERY_INTERVAL_S
) -> AsyncIterator[asyncio.Task[None]]:
    """Runs `run_pass` (an async callable) every `interval_s` until the block exits; failures are logged."""
    assert interval_s > 0

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await run_pass()
            except Exception:
                log.exception("periodic_task_failed", task="withdrawal_recovery")

    task = asyncio.create_task(loop())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
