"""Books a mined x402 settlement as a deposit to the payer wallet's credit, exactly once.

The idempotency key is x402's replay key (network, token, payer, authorization nonce) and the external
reference is the on-chain transfer (network, tx hash, log index): a second booking of the same payment,
by a retry, by recovery after a crash or by a chain watcher, can only return the first.
"""

from __future__ import annotations

from ledger import LedgerTransaction, Posting, chart
from proxy.chart_accounts import ChartAccounts
from proxy.money import atomic_to_nano_usd
from proxy.payments.intents import SettlementIntent
from proxy.settings import AssetSettings

__all__ = ["X402_DEPOSIT_CODE", "book_x402_deposit", "x402_deposit_key"]

X402_DEPOSIT_CODE = "x402_deposit"


def x402_deposit_key(intent: SettlementIntent) -> str:
    return f"x402:{intent.network}:{intent.asset}:{intent.payer}:{intent.authorization_nonce}".lower()


async def book_x402_deposit(
    accounts: ChartAccounts,
    *,
    intent: SettlementIntent,
    asset: AssetSettings,
    settlement_wallet: str,
    tx_hash: str,
    transfer_log_index: int,
) -> LedgerTransaction:
    assert intent.asset.lower() == asset.address.lower()
    amount_nano_usd = atomic_to_nano_usd(intent.value_atomic, decimals=asset.decimals)
    assert amount_nano_usd > 0
    cash_account = chart.cash(intent.network, asset.symbol, settlement_wallet)
    credit_account = chart.credit_wallet(intent.payer)
    await accounts.ensure([cash_account, credit_account])
    return await accounts.ledger.post(
        idempotency_key=x402_deposit_key(intent),
        code=X402_DEPOSIT_CODE,
        external_ref=f"{intent.network}:{tx_hash}:{transfer_log_index}".lower(),
        postings=[
            Posting(account=cash_account, amount=amount_nano_usd),
            Posting(account=credit_account, amount=-amount_nano_usd),
        ],
        metadata={
            "payer": intent.payer,
            "asset": intent.asset,
            "value_atomic": intent.value_atomic,
            "tx_hash": tx_hash,
            "authorization_nonce": intent.authorization_nonce,
            "request_id": intent.request_id,
        },
    )
