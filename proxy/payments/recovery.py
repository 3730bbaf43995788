"""Finishes unfinished settlement intents from the chain's state, at start-up and then periodically.

claimed (never signed, so never sent) → abandoned: nothing moved, the payer may submit it again.
signed → the settler looks for the transaction (receipt; or rebroadcast of the stored raw transaction;
or the authorization's AuthorizationUsed log) → mined and booked, or failed when it can never land.
mined → booked. Booking is idempotent, so running this twice, or beside a live request, books once.
"""

from __future__ import annotations

import structlog
from pydantic import BaseModel

from proxy.chart_accounts import ChartAccounts
from proxy.payments.booking import book_x402_deposit
from proxy.payments.intents import SettlementIntent, SettlementIntents, SettlementStatus
from proxy.settings import AssetSettings
from x402.errors import SettlementError, SettlementPending
from x402.settle import Settler

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


async def _book(accounts: ChartAccounts, intents: SettlementIntents, intent: SettlementIntent,
                assets: tuple[AssetSettings, ...], settlement_wallet: str) -> None:
    assert intent.tx_hash is not None
    assert intent.transfer_log_index is not None
    transaction = await book_x402_deposit(
        accounts, intent=intent, asset=_asset(assets, intent.asset), settlement_wallet=settlement_wallet,
        tx_hash=intent.tx_hash, transfer_log_index=intent.transfer_log_index,
    )
    await intents.record_booked(intent.id, ledger_transaction_id=transaction.id)


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
        if intent.status == SettlementStatus.CLAIMED:
            await intents.record_abandoned(intent.id, reason="never_signed")
            report.abandoned += 1
            continue
        if intent.status == SettlementStatus.SIGNED:
            assert intent.raw_tx is not None and intent.tx_hash is not None
            try:
                found = await settler.recover(
                    raw_tx=intent.raw_tx, tx_hash=intent.tx_hash, asset=intent.asset,
                    authorizer=intent.payer, nonce=intent.authorization_nonce,
                    valid_before_unix_s=intent.valid_before_unix_s,
                )
            except SettlementPending:
                report.pending += 1
                continue
            except SettlementError as error:
                await intents.record_failed(intent.id, reason=error.reason)
                report.failed += 1
                continue
            await intents.record_mined(intent.id, tx_hash=found.tx_hash, block_number=found.block_number,
                                       transfer_log_index=found.transfer_log_index)
            intent = await intents.get(intent.id) or intent
        await _book(accounts, intents, intent, assets, settler.address)
        report.booked += 1
    if report != RecoveryReport():
        log.info("settlements_recovered", **report.model_dump())
    return report
