"""Books a mined x402 settlement as a deposit to the payer wallet's credit, exactly once.

The idempotency key is x402's replay key (network, token, payer, authorization nonce) and the external
reference is the on-chain transfer (network, tx hash, log index): a second booking of the same payment,
by a retry, by recovery after a crash or by a chain watcher, can only return the first.
"""

from __future__ import annotations

from ledger import LedgerTransaction, Posting, chart
from proxy.chart_accounts import ChartAccounts
from proxy.money import atomic_to_nano_usd
from proxy.payments.intents import SettlementIntent, SettlementIntents
from proxy.settings import AssetSettings
from x402.settle import SettlementResult, SignedSettlement

__all__ = [
    "X402_DEPOSIT_CODE",
    "book_mined_intent",
    "book_mined_settlement",
    "book_x402_deposit",
    "record_signed_settlement",
    "x402_deposit_key",
]

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
    cash_account = chart.cash(intent.network, asset.address, settlement_wallet)
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


async def record_signed_settlement(intents: SettlementIntents, intent_id: int, signed: SignedSettlement) -> None:
    """The `before_send` step: the signed transaction is durable before it can reach the chain."""
    await intents.record_signed(intent_id, tx_hash=signed.tx_hash, raw_tx="0x" + signed.raw_tx.hex(),
                                tx_nonce=signed.tx_nonce, from_block=signed.from_block)


async def book_mined_settlement(
    intents: SettlementIntents,
    accounts: ChartAccounts,
    intent_id: int,
    result: SettlementResult,
    *,
    asset: AssetSettings,
    settlement_wallet: str,
) -> LedgerTransaction:
    # Every settlement transaction emits the token's Transfer; without it there is nothing to book against.
    assert result.transfer_log_index is not None, f"no Transfer log in {result.tx_hash}"
    intent = await intents.record_mined(intent_id, tx_hash=result.tx_hash, block_number=result.block_number,
                                        transfer_log_index=result.transfer_log_index)
    return await book_mined_intent(intents, accounts, intent, asset=asset, settlement_wallet=settlement_wallet)


async def book_mined_intent(
    intents: SettlementIntents,
    accounts: ChartAccounts,
    intent: SettlementIntent,
    *,
    asset: AssetSettings,
    settlement_wallet: str,
) -> LedgerTransaction:
    assert intent.tx_hash is not None
    assert intent.transfer_log_index is not None
    transaction = await book_x402_deposit(
        accounts, intent=intent, asset=asset, settlement_wallet=settlement_wallet,
        tx_hash=intent.tx_hash, transfer_log_index=intent.transfer_log_index,
    )
    await intents.record_booked(intent.id, ledger_transaction_id=transaction.id)
    return transaction
