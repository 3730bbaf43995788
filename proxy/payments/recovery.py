"""Finishes unfinished settlement intents from the chain's state, at start-up and then periodically.

claimed (never signed, so never sent) → abandoned: nothing moved, the payer may submit it again.
signed → the settler finds the outcome (receipt; rebroadcast of the stored raw transaction; the
authorization's AuthorizationUsed log; or a fresh transaction when the stored one can never be mined)
→ mined and booked, or failed when it can never land. mined → booked. Booking is idempotent, so running
this twice, or beside a live request, books once. The gas of every mined transaction is booked, reverted
ones included (a reverted stored transaction before a fresh one replaces it).
"""

from __future__ import annotations

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
) -> RecoveryReport:
    report = RecoveryReport()
    for intent in await intents.unfinished(older_than_s=older_than_s):
        asset = _asset(assets, intent.asset)
        if intent.status == SettlementStatus.CLAIMED:
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
