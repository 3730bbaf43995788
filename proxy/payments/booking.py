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
from x402.errors import TransactionFailed
from x402.settle import GasSpent, SettlementResult, SignedSettlement

__all__ = [
    "SETTLEMENT_GAS_CODE",
    "WITHDRAWAL_GAS_CODE",
    "X402_DEPOSIT_CODE",
    "book_gas",
    "book_gas_spent",
    "book_mined_intent",
    "book_mined_settlement",
    "book_reverted_settlement",
    "book_x402_deposit",
    "gas_external_ref",
    "record_signed_settlement",
    "x402_deposit_key",
]

X402_DEPOSIT_CODE = "x402_deposit"
SETTLEMENT_GAS_CODE = "settlement_gas"
WITHDRAWAL_GAS_CODE = "withdrawal_gas"


def gas_external_ref(network: str, tx_hash: str) -> str:
    """`<network>:<tx hash>:gas`, lower-cased: the reference of the gas one wallet transaction paid."""
    assert tx_hash.startswith("0x")
    return f"{network}:{tx_hash}:gas".lower()


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


async def book_gas(
    accounts: ChartAccounts,
    *,
    network: str,
    wallet: str,
    tx_hash: str,
    block_number: int,
    gas_used: int,
    effective_gas_price_wei: int,
    code: str,
) -> LedgerTransaction | None:
    """Books the gas a settlement-wallet transaction paid, in wei, once per transaction (keyed by its hash).

    The native cash account starts at zero and goes negative by what gas consumed: fund it with an opening
    balance from `equity:external` to tie it to the wallet's on-chain balance.
    """
    assert gas_used >= 0
    assert effective_gas_price_wei >= 0
    gas_wei = gas_used * effective_gas_price_wei
    if gas_wei == 0:
        return None
    expense, native = chart.gas_expense(network), chart.native_cash(network, wallet)
    await accounts.ensure([expense, native])
    return await accounts.ledger.post(
        idempotency_key=f"gas:{network}:{tx_hash}".lower(),
        code=code,
        external_ref=gas_external_ref(network, tx_hash),
        postings=[Posting(account=expense, amount=gas_wei), Posting(account=native, amount=-gas_wei)],
        # The block lets reconciliation place the booking in its block range without asking the chain.
        metadata={
            "tx_hash": tx_hash,
            "block_number": block_number,
            "gas_used": gas_used,
            "effective_gas_price_wei": effective_gas_price_wei,
        },
    )


async def book_gas_spent(
    accounts: ChartAccounts, *, network: str, wallet: str, spent: GasSpent, code: str
) -> LedgerTransaction | None:
    return await book_gas(
        accounts,
        network=network,
        wallet=wallet,
        tx_hash=spent.tx_hash,
        block_number=spent.block_number,
        gas_used=spent.gas_used,
        effective_gas_price_wei=spent.effective_gas_price_wei,
        code=code,
    )


async def book_reverted_settlement(
    intents: SettlementIntents,
    accounts: ChartAccounts,
    intent_id: int,
    error: TransactionFailed,
    *,
    network: str,
    settlement_wallet: str,
) -> None:
    """A settlement mined and reverted: its gas is booked once, the intent fails, and nothing is deposited.

    Gas first, as for a successful settlement: until the intent is marked failed, a crash leads recovery
    back to the same receipt, and the booking is idempotent by tx hash.
    """
    spent = GasSpent.of_revert(error)
    await book_gas_spent(
        accounts, network=network, wallet=settlement_wallet, spent=spent, code=SETTLEMENT_GAS_CODE
    )
    await intents.record_failed(
        intent_id, reason=error.reason, reverted_tx_hash=spent.tx_hash, block_number=spent.block_number
    )


async def record_signed_settlement(
    intents: SettlementIntents, intent_id: int, signed: SignedSettlement
) -> None:
    """The `before_send` step: the signed transaction is durable before it can reach the chain."""
    await intents.record_signed(
        intent_id,
        tx_hash=signed.tx_hash,
        raw_tx="0x" + signed.raw_tx.hex(),
        tx_nonce=signed.tx_nonce,
        from_block=signed.from_block,
    )


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
    # Gas first: only the receipt knows it, and until the intent is marked mined a crash leads recovery
    # back to the receipt (the gas booking is idempotent by tx hash), so it is never skipped. Recovery may
    # find the authorization settled by someone else's transaction: its gas is not ours to book.
    if result.sender.lower() == settlement_wallet.lower():
        await book_gas(
            accounts,
            network=result.network,
            wallet=settlement_wallet,
            tx_hash=result.tx_hash,
            block_number=result.block_number,
            gas_used=result.gas_used,
            effective_gas_price_wei=result.effective_gas_price_wei,
            code=SETTLEMENT_GAS_CODE,
        )
    intent = await intents.record_mined(
        intent_id,
        tx_hash=result.tx_hash,
        block_number=result.block_number,
        transfer_log_index=result.transfer_log_index,
    )
    return await book_mined_intent(
        intents, accounts, intent, asset=asset, settlement_wallet=settlement_wallet
    )


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
        accounts,
        intent=intent,
        asset=asset,
        settlement_wallet=settlement_wallet,
        tx_hash=intent.tx_hash,
        transfer_log_index=intent.transfer_log_index,
    )
    await intents.record_booked(intent.id, ledger_transaction_id=transaction.id)
    return transaction
