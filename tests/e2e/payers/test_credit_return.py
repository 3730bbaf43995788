"""The operator's credit-return policy sends keyless wallets' credit above the threshold back on chain: one
transfer per wallet per period, gas booked, nothing sent twice across a restart, keyed wallets left alone.

Method: the running router on Anvil (SQLite and PostgreSQL); CreditReturns is built over the app's own
withdrawals (its Settler sends the transfers) with an injected clock, run, "restarted" (a new instance on
the same database) and run again in the same period, then in the next one; the chain balances, withdrawal
rows and ledger are compared before and after, and the ledger is checked clean.
"""

from __future__ import annotations

from ledger import chart, check_ledger
from proxy.accounts.credit_return import CreditReturns
from proxy.accounts.withdrawals import WithdrawalStatus
from proxy.api.app_keys import DB_ENGINE, LEDGER, WITHDRAWALS
from proxy.settings import ReturningPayersSettings
from tests.e2e.accounts.helpers import obtain_key
from tests.e2e.api.support import topup
from tests.fixtures.app import RunningRouter
from tests.fixtures.clock import FakeClock

INTERVAL_S = 3_600.0
POLICY = ReturningPayersSettings(
    credit_return_threshold_usd="0.1", credit_return_min_usd="0.01", credit_return_interval_s=INTERVAL_S
)


def _returns(router: RunningRouter, clock: FakeClock) -> CreditReturns:
    return CreditReturns(
        engine=router.app[DB_ENGINE],
        ledger=router.app[LEDGER],
        withdrawals=router.app[WITHDRAWALS],
        settings=POLICY,
        asset=router.settings.assets[0],
        clock_unix_s=clock,
    )


async def test_credit_above_the_threshold_goes_back_once(router: RunningRouter) -> None:
    keyless, keyed = router.payers[4], router.payers[5]
    token = router.settings.assets[0].address
    await topup(router, keyless, amount_usd="0.5")
    await obtain_key(router, keyed)
    await topup(router, keyed, amount_usd="0.5")
    ledger = router.app[LEDGER]
    chain_before = await router.token_balance(token, keyless.address)
    clock = FakeClock(start_s=1_800_000_000.0)
    gas_account = chart.gas_expense(router.settings.network)
    gas_before = (await ledger.balance(gas_account)).posted

    first = await _returns(router, clock).run_once()
    assert [record.wallet for record in first.returned] == [keyless.address.lower()]
    record = first.returned[0]
    assert record.status == WithdrawalStatus.COMPLETED
    assert record.amount_atomic == 400_000  # 0.5 − 0.1 USD, in the 6-decimal token.
    assert record.destination == keyless.address.lower()
    assert record.tx_hash is not None
    assert first.skipped_keyed == 1
    receipt = await router.w3.eth.get_transaction_receipt(record.tx_hash)  # type: ignore[arg-type]
    gas_wei = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert (await ledger.balance(gas_account)).posted == gas_before + gas_wei  # The transfer's gas, booked.
    assert await router.token_balance(token, keyless.address) == chain_before + 400_000
    assert (await ledger.balance(chart.credit_wallet(keyless.address))).available == 100_000_000
    assert (await ledger.balance(chart.credit_wallet(keyed.address))).available == 500_000_000

    # More credit in the same period, run by a fresh instance as after a restart: this period's transfer
    # is found, nothing is sent twice.
    await topup(router, keyless, amount_usd="0.3")
    chain_mid = await router.token_balance(token, keyless.address)
    again = await _returns(router, clock).run_once()
    assert again.returned == []
    assert again.already_returned == 1
    assert await router.token_balance(token, keyless.address) == chain_mid

    # Next period: the excess goes back, in one more transfer.
    clock.advance(INTERVAL_S)
    later = await _returns(router, clock).run_once()
    assert later.period == first.period + 1
    assert [record.amount_atomic for record in later.returned] == [300_000]
    assert await router.token_balance(token, keyless.address) == chain_mid + 300_000
    assert (await ledger.balance(chart.credit_wallet(keyless.address))).available == 100_000_000
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def test_small_excess_waits_until_it_is_worth_a_transfer(router: RunningRouter) -> None:
    payer = router.payers[6]
    token = router.settings.assets[0].address
    await topup(router, payer, amount_usd="0.105")  # 0.005 above the threshold, below the 0.01 minimum.
    chain_before = await router.token_balance(token, payer.address)
    run = await _returns(router, FakeClock(start_s=1_800_000_000.0)).run_once()
    assert run.returned == []
    assert await router.token_balance(token, payer.address) == chain_before
    assert (await router.app[LEDGER].balance(chart.credit_wallet(payer.address))).available == 105_000_000
