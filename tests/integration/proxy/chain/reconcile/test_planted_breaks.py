"""Reconciliation finds each kind of break when one is planted, and only the breaks that follow from it.

Method: a private Anvil (module) and a new settlement wallet per test, so the wallet's chain history is the
test's own; honest deposits are booked by the real chain watcher; the plant is a direct transfer nobody
books, or a ledger booking the chain does not support. SQLite and PostgreSQL (`database_url`).
"""

from __future__ import annotations

import pytest

from ledger import Ledger, chart, unix_ms_now
from ledger.reconcile import list_runs, run_breaks
from proxy.chain.transfers import transfer_external_ref
from tests.integration.proxy.chain.reconcile.conftest import NETWORK, Books, kinds

pytestmark = pytest.mark.anvil

HOUR_MS = 3_600_000


def _cash(books: Books) -> str:
    return chart.cash(NETWORK, books.chain.tokens.usdc.address, books.wallet.address)


def _credit(books: Books, index: int) -> str:
    return chart.credit_wallet(books.chain.accounts[index].address)


async def _honest_deposit(books: Books, sender_index: int, amount_atomic: int) -> str:
    tx_hash = await books.pay_in(sender_index, amount_atomic)
    assert (await books.watch()).booked == 1
    return tx_hash


async def test_honest_deposits_reconcile_clean_and_the_run_is_stored(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    await books.pay_in(2, 300, usdt=True)
    assert (await books.watch()).booked == 1
    report = await books.reconcile()
    assert report.clean, report.breaks
    assert (report.movements_count, report.matched_count) == (2, 2)
    assert [(b.chain_nano_usd, b.ledger_nano_usd) for b in report.balances] == [
        (700_000, 700_000),
        (300_000, 300_000),
    ]
    [stored] = await list_runs(books.engine)
    assert stored == report.run
    assert stored.metadata["resume_from_block"] == report.to_block + 1
    # The next run resumes after this one: nothing new, still clean.
    again = await books.reconcile()
    assert (again.clean, again.from_block, again.movements_count) == (True, report.to_block + 1, 0)


async def test_direct_transfer_nobody_booked_is_missing_in_ledger(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    tx_hash = await books.pay_in(2, 500)  # The watcher is not polled again.
    report = await books.reconcile()
    assert kinds(report) == ["balance_mismatch", "missing_in_ledger"]
    [missing] = [b for b in report.breaks if b.kind == "missing_in_ledger"]
    assert missing.external_ref == transfer_external_ref(NETWORK, tx_hash, 0)
    assert missing.external_amount_nano_usd == 500_000
    assert [b.kind for b in await run_breaks(books.engine, report.run.id)] == [b.kind for b in report.breaks]


async def test_deposit_booked_without_a_transfer_is_missing_on_chain(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    invented = f"{NETWORK}:0x{'ab' * 32}:0"
    await books.accounts.ensure([_cash(books), _credit(books, 3)])
    await books.ledger.post(
        idempotency_key="invented",
        code="transfer_deposit",
        external_ref=invented,
        postings=[(_cash(books), 5_000_000), (_credit(books, 3), -5_000_000)],
    )
    report = await books.reconcile()
    assert kinds(report) == ["balance_mismatch", "missing_on_chain"]
    [missing] = [b for b in report.breaks if b.kind == "missing_on_chain"]
    assert (missing.external_ref, missing.ledger_amount_nano_usd) == (invented, 5_000_000)
    assert report.receipts.looked_up == 0  # the invented hash was looked up for scoping, not as ours


async def test_wrong_amount_is_an_amount_mismatch(books: Books) -> None:
    tx_hash = await books.pay_in(1, 700)
    await books.accounts.ensure([_cash(books), _credit(books, 1)])
    await books.ledger.post(
        idempotency_key="wrong-amount",
        code="transfer_deposit",
        external_ref=transfer_external_ref(NETWORK, tx_hash, 0),
        postings=[(_cash(books), 800_000), (_credit(books, 1), -800_000)],
    )
    report = await books.reconcile()
    assert kinds(report) == ["amount_mismatch", "balance_mismatch"]
    [mismatch] = [b for b in report.breaks if b.kind == "amount_mismatch"]
    assert (mismatch.ledger_amount_nano_usd, mismatch.external_amount_nano_usd) == (800_000, 700_000)


async def test_a_transfer_booked_twice_is_a_duplicate(books: Books) -> None:
    # Two ways past the unique external_ref: the same ref spelled differently, and a wrong log index.
    first = await _honest_deposit(books, 1, 700)
    second = await _honest_deposit(books, 2, 400)
    await books.accounts.ensure([_cash(books), _credit(books, 1), _credit(books, 2)])
    await books.ledger.post(
        idempotency_key="again-upper-case",
        code="transfer_deposit",
        external_ref=f"{NETWORK}:{first}:0".upper(),
        postings=[(_cash(books), 700_000), (_credit(books, 1), -700_000)],
    )
    await books.ledger.post(
        idempotency_key="again-wrong-log-index",
        code="transfer_deposit",
        external_ref=f"{NETWORK}:{second}:7",
        postings=[(_cash(books), 400_000), (_credit(books, 2), -400_000)],
    )
    report = await books.reconcile()
    assert kinds(report) == ["balance_mismatch", "duplicate", "duplicate"]
    duplicates = {b.external_ref for b in report.breaks if b.kind == "duplicate"}
    assert duplicates == {transfer_external_ref(NETWORK, tx, 0) for tx in (first, second)}
    assert all("transactions" in b.detail for b in report.breaks if b.kind == "duplicate")


async def test_in_transit_not_drained_in_time_is_stale(books: Books) -> None:
    # A withdrawal moved credit into in_transit, and its transfer was never booked out of it.
    await _honest_deposit(books, 1, 700)
    transit = chart.in_transit(NETWORK, books.chain.tokens.usdc.address)
    await books.accounts.ensure([transit])
    hold = await books.ledger.hold(
        idempotency_key="withdrawal-hold",
        debit_account=_credit(books, 1),
        credit_account=transit,
        amount=200_000,
        timeout_s=600,
    )
    await books.ledger.capture(hold.id, 200_000, idempotency_key="withdrawal-capture")
    assert (await books.reconcile()).clean  # young: a withdrawal in flight is normal
    late = await books.reconcile(now_unix_ms=unix_ms_now() + 2 * HOUR_MS)
    assert kinds(late) == ["stale_in_transit"]
    assert late.breaks[0].account == transit


async def test_hold_past_its_timeout_still_pending_is_reported_then_released(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    payable = chart.provider_payable("simulated")
    await books.accounts.ensure([payable])
    # A hold taken an hour ago with a one-minute timeout, and no sweeper ran since.
    past = Ledger(books.engine, clock=lambda: unix_ms_now() - HOUR_MS)
    await past.hold(
        idempotency_key="forgotten",
        debit_account=_credit(books, 1),
        credit_account=payable,
        amount=100_000,
        timeout_s=60,
    )
    report = await books.reconcile()
    assert kinds(report) == ["expired_hold_not_released"]
    # Reconciliation read the ledger's balances, which sweeps: the hold is released now.
    assert (await books.reconcile()).clean


async def test_unexplained_cash_posting_is_a_balance_mismatch(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    await books.accounts.ensure([chart.EQUITY_EXTERNAL])
    await books.ledger.post(
        idempotency_key="manual-adjustment",
        code="adjustment",
        postings=[(_cash(books), 1_000), (chart.EQUITY_EXTERNAL, -1_000)],
    )
    report = await books.reconcile()
    assert kinds(report) == ["balance_mismatch"]
    assert (report.breaks[0].ledger_amount_nano_usd, report.breaks[0].external_amount_nano_usd) == (
        701_000,
        700_000,
    )


async def test_unconfirmed_unbooked_transfer_is_pending_not_a_break(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    late_block = await books.chain.w3.eth.block_number + 1
    await books.pay_in(2, 500)
    report = await books.reconcile(confirmations=3)
    assert report.clean, report.breaks
    assert [m.amount_atomic for m in report.pending] == [500]
    assert report.run.metadata["resume_from_block"] == late_block
    # Once the transfer is deep enough, the watcher has had its chance: unbooked, it is a break.
    await books.chain.rpc("anvil_mine", [hex(3)])
    assert kinds(await books.reconcile(confirmations=3)) == ["balance_mismatch", "missing_in_ledger"]


async def test_bookings_of_blocks_outside_the_range_are_left_out(books: Books) -> None:
    await _honest_deposit(books, 1, 700)
    after_first = await books.chain.w3.eth.block_number + 1
    await _honest_deposit(books, 2, 300)
    report = await books.reconcile(from_block=after_first)
    assert report.clean, report.breaks
    assert (report.movements_count, report.out_of_range_bookings) == (1, 1)
