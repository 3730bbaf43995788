"""Finishes unfinished settlement intents from the chain's state, at start-up and then periodically.

claimed (never signed, so never sent) → abandoned: nothing moved, the payer may submit it again.
signed → the settler finds the outcome (receipt; rebroadcast of the stored raw transaction; the
authorization's AuthorizationUsed log; or a fresh transaction when the stored one can never be mined)
→ mined and booked, or failed when it can never land. mined → booked. Booking is idempotent, so running
this twice, or beside a live request, books once. The gas of every mined transaction is booked, reverted
ones included (a reverted stored transaction before a fresh one replaces it).

`upto` intents (proxy/payments/upto.py): due (the cost captured, never signed) or signed → settled and
booked, or booked as a loss when it can never land; claimed → left to its live request until its hold can
no longer be captured (older than the hold timeout), then released: the promise leaves the credit.
"""

from __future__ import annotations

from datetime import UTC

import structlog
from pydantic import BaseModel

from proxy.chart_accounts import ChartAccounts
from proxy.payments.booking import (
    SETTLEMENT_GAS_CODE,
    book_gas_spent,
    book_mined_intent,
    book_mined_settlement,
    book_reverted_settlement,
    record_signed_settlement,
)
from proxy.payments.intents import SettlementIntent, SettlementIntents, SettlementStatus
from proxy.payments.stored_payment import load_signed_settlement, load_verified_payment
from proxy.payments.upto import UptoPayments, finish_upto_intent, release_unserved_upto
from proxy.settings import AssetSettings
from x402.errors import (
    ChainUnavailable,
    SettlementPending,
    SettlementSendFailed,
    TransactionFailed,
    X402Error,
)
from x402.settle import Settler, SignedSettlement

__all__ = ["RecoveryReport", "recover_settlements"]

log = structlog.get_logger("megarouter.recovery")


class RecoveryReport(BaseModel):
    booked: int = 0
    abandoned: int = 0
    failed: int = 0
    pending: int = 0
    released: int = 0


def _asset(assets: tuple[AssetSettings, ...], address: str) -> AssetSettings:
    for asset in assets:
        if asset.address.lower() == address.lower():
            return asset
    raise AssertionError(f"intent in an asset that is no longer configured: {address}")


async def _finish_signed(
    intent: SettlementIntent,
    *,
    intents: SettlementIntents,
    settler: Settler,
    accounts: ChartAccounts,
    asset: AssetSettings,
) -> None:
    async def record_signed(signed: SignedSettlement) -> None:
        await record_signed_settlement(intents, intent.id, signed)

    assert intent.tx_hash is not None
    stored = await settler.gas_spent(intent.tx_hash)
    if stored is not None and stored.reverted:
        # The stored transaction reverted, and recovery may now send a fresh one in its place, which would
        # overwrite its hash: its gas is booked first, or nothing would ever book it.
        await book_gas_spent(
            accounts, network=intent.network, wallet=settler.address, spent=stored, code=SETTLEMENT_GAS_CODE
        )
    recovered = await settler.recover(
        load_verified_payment(intent), load_signed_settlement(intent), before_send=record_signed
    )
    await book_mined_settlement(
        intents, accounts, intent.id, recovered.result, asset=asset, settlement_wallet=settler.address
    )
    log.info(
        "settlement_recovered",
        intent_id=intent.id,
        method=recovered.recovered_by,
        tx_hash=recovered.result.tx_hash,
    )


async def recover_settlements(
    *,
    intents: SettlementIntents,
    settler: Settler,
    accounts: ChartAccounts,
    assets: tuple[AssetSettings, ...],
    older_than_s: float = 0.0,
    upto: UptoPayments | None = None,
) -> RecoveryReport:
    report = RecoveryReport()
    for intent in await intents.unfinished(older_than_s=older_than_s):
        asset = _asset(assets, intent.asset)
        if intent.scheme == "upto":
            assert upto is not None, "an upto intent needs the upto payments to recover it"
            await _recover_upto(intent, upto=upto, report=report)
        elif intent.status == SettlementStatus.CLAIMED:
            await intents.record_abandoned(intent.id, reason="never_signed")
            report.abandoned += 1
        elif intent.status == SettlementStatus.SIGNED:
            try:
                await _finish_signed(intent, intents=intents, settler=settler, accounts=accounts, asset=asset)
            except (SettlementPending, SettlementSendFailed, ChainUnavailable):
                # The outcome is still unknown: leave the intent open for the next pass.
                report.pending += 1
                continue
            except TransactionFailed as error:
                await book_reverted_settlement(
                    intents,
                    accounts,
                    intent.id,
                    error,
                    network=intent.network,
                    settlement_wallet=settler.address,
                )
                report.failed += 1
                continue
            except X402Error as error:
                await intents.record_failed(intent.id, reason=error.reason)
                report.failed += 1
                continue
            report.booked += 1
        else:
            assert intent.status == SettlementStatus.MINED
            await book_mined_intent(intents, accounts, intent, asset=asset, settlement_wallet=settler.address)
            report.booked += 1
    if report != RecoveryReport():
        log.info("settlements_recovery_done", **report.model_dump())
    return report


async def _recover_upto(intent: SettlementIntent, *, upto: UptoPayments, report: RecoveryReport) -> None:
    if intent.status == SettlementStatus.CLAIMED:
        # Its request may still be running (another process); once its hold has timed out it never will.
        updated_at = intent.updated_at
        if updated_at.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC.
            updated_at = updated_at.replace(tzinfo=UTC)
        age_s = (upto.intents.now() - updated_at).total_seconds()
        if age_s > upto.settings.hold_timeout_s:
            await release_unserved_upto(intent, payments=upto)
            report.released += 1
        return
    try:
        outcome = await finish_upto_intent(intent, payments=upto)
    except (SettlementPending, SettlementSendFailed, ChainUnavailable):
        report.pending += 1
        return
    if outcome.response.success:
        report.booked += 1
    else:
        report.failed += 1
