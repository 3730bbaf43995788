"""The ledger against real SQLite and PostgreSQL: posting, idempotency, holds, balances, lookups, checks.

Each test gets a fresh migrated database per backend and a fake clock; expiry is driven by moving the clock.
"""

from __future__ import annotations

import pytest

from ledger import (
    AccountConflict,
    AccountFlags,
    AccountNotFound,
    AccountType,
    CaptureExceedsHold,
    DuplicateExternalRef,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    HoldState,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidPostings,
    Ledger,
    UnbalancedTransaction,
    check_ledger,
)
from tests.fixtures.ledger import FakeClock, open_demo_accounts

ALICE = "credit:account:alice"
EXTERNAL = "equity:external"
PAYABLE = "provider_payable:openai"


async def deposit(ledger: Ledger, amount: int, key: str = "deposit-1") -> None:
    await ledger.post(idempotency_key=key, code="deposit", postings=[(EXTERNAL, amount), (ALICE, -amount)])


async def test_post_books_entries_and_balances(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    tx = await ledger.post(
        idempotency_key="d1",
        code="deposit",
        postings=[(EXTERNAL, 1_000), (ALICE, -1_000)],
        external_ref="31337:0xabc:0",
        metadata={"payer": "0x01"},
    )
    assert [(p.account, p.amount) for p in tx.postings] == [(EXTERNAL, 1_000), (ALICE, -1_000)]
    alice = await ledger.balance(ALICE)
    assert (alice.posted, alice.pending, alice.available) == (1_000, 0, 1_000)
    assert (await ledger.balance(EXTERNAL)).posted == -1_000
    assert await ledger.get_transaction(tx.id) == tx
    assert await ledger.transaction_by_external_ref("31337:0xabc:0") == tx
    assert await ledger.transaction_by_idempotency_key("d1") == tx
    assert await ledger.get_transaction(tx.id + 100) is None
    assert await check_ledger(ledger.engine) == []


async def test_replay_returns_first_result_and_other_body_conflicts(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    first = await ledger.post(idempotency_key="k", code="deposit", postings=[(EXTERNAL, 5), (ALICE, -5)])
    again = await ledger.post(idempotency_key="k", code="deposit", postings=[(EXTERNAL, 5), (ALICE, -5)])
    assert again == first
    with pytest.raises(IdempotencyConflict):
        await ledger.post(idempotency_key="k", code="deposit", postings=[(EXTERNAL, 6), (ALICE, -6)])
    assert (await ledger.balance(ALICE)).posted == 5
    assert len(await ledger.transactions()) == 1


async def test_refuses_bad_postings(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    with pytest.raises(UnbalancedTransaction):
        await ledger.post(idempotency_key="u", code="x", postings=[(EXTERNAL, 5), (ALICE, -4)])
    with pytest.raises(InvalidPostings):
        await ledger.post(idempotency_key="z", code="x", postings=[(EXTERNAL, 0), (ALICE, 0)])
    with pytest.raises(AccountNotFound):
        await ledger.post(idempotency_key="n", code="x", postings=[(EXTERNAL, 5), ("credit:account:bob", -5)])
    await ledger.ensure_account("cash:other", type=AccountType.ASSET, unit="atomic_usdc")
    with pytest.raises(UnbalancedTransaction):
        await ledger.post(idempotency_key="m", code="x", postings=[(EXTERNAL, 5), ("cash:other", -5)])
    assert await ledger.transactions() == []


async def test_duplicate_external_ref_is_refused(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await ledger.post(idempotency_key="a", code="d", postings=[(EXTERNAL, 1), (ALICE, -1)], external_ref="r")
    with pytest.raises(DuplicateExternalRef):
        await ledger.post(
            idempotency_key="b", code="d", postings=[(EXTERNAL, 1), (ALICE, -1)], external_ref="r"
        )


async def test_must_not_go_negative_account_cannot_be_overdrawn(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await deposit(ledger, 100)
    with pytest.raises(InsufficientFunds):
        await ledger.post(idempotency_key="w", code="withdraw", postings=[(ALICE, 101), (EXTERNAL, -101)])
    await ledger.post(idempotency_key="w2", code="withdraw", postings=[(ALICE, 100), (EXTERNAL, -100)])
    assert (await ledger.balance(ALICE)).available == 0


async def test_ensure_account_is_idempotent_and_detects_conflicts(ledger: Ledger) -> None:
    first = await ledger.ensure_account(ALICE, type=AccountType.LIABILITY, unit="nano_usd")
    assert await ledger.ensure_account(ALICE, type=AccountType.LIABILITY, unit="nano_usd") == first
    with pytest.raises(AccountConflict):
        await ledger.ensure_account(
            ALICE, type=AccountType.LIABILITY, unit="nano_usd", flags=AccountFlags.MUST_NOT_GO_NEGATIVE
        )


async def test_hold_capture_releases_remainder(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await deposit(ledger, 1_000)
    hold = await ledger.hold(
        idempotency_key="h1", debit_account=ALICE, credit_account=PAYABLE, amount=600, timeout_s=60
    )
    alice = await ledger.balance(ALICE)
    assert (alice.posted, alice.pending, alice.available) == (1_000, 600, 400)
    with pytest.raises(InsufficientFunds):
        await ledger.hold(
            idempotency_key="h2", debit_account=ALICE, credit_account=PAYABLE, amount=401, timeout_s=60
        )
    with pytest.raises(CaptureExceedsHold):
        await ledger.capture(hold.id, 601, idempotency_key="c0")
    captured = await ledger.capture(hold.id, 250, idempotency_key="c1")
    assert captured.state is HoldState.CAPTURED
    assert captured.captured_amount == 250
    assert await ledger.capture(hold.id, 250, idempotency_key="c1") == captured
    with pytest.raises(IdempotencyConflict):
        await ledger.capture(hold.id, 251, idempotency_key="c1")
    with pytest.raises(HoldAlreadyResolved):
        await ledger.capture(hold.id, 10, idempotency_key="c2")
    with pytest.raises(HoldAlreadyResolved):
        await ledger.void(hold.id, idempotency_key="v1")
    alice = await ledger.balance(ALICE)
    assert (alice.posted, alice.pending, alice.available) == (750, 0, 750)
    assert (await ledger.balance(PAYABLE)).posted == 250
    assert captured.resolution_transaction_id is not None
    tx = await ledger.get_transaction(captured.resolution_transaction_id)
    assert tx is not None
    assert tx.hold_id == hold.id
    assert await check_ledger(ledger.engine) == []


async def test_void_and_expiry_release_the_hold(ledger: Ledger, ledger_clock: FakeClock) -> None:
    await open_demo_accounts(ledger)
    await deposit(ledger, 1_000)
    first = await ledger.hold(
        idempotency_key="h1", debit_account=ALICE, credit_account=PAYABLE, amount=300, timeout_s=10
    )
    second = await ledger.hold(
        idempotency_key="h2", debit_account=ALICE, credit_account=PAYABLE, amount=200, timeout_s=30
    )
    voided = await ledger.void(first.id, idempotency_key="v1")
    assert voided.state is HoldState.VOIDED
    assert [h.id for h in await ledger.open_holds(ALICE)] == [second.id]
    ledger_clock.advance(30)
    # Lazy expiry: reading the balance releases the due hold.
    alice = await ledger.balance(ALICE)
    assert (alice.posted, alice.pending, alice.available) == (1_000, 0, 1_000)
    assert (await ledger.get_hold(second.id)).state is HoldState.EXPIRED
    with pytest.raises(HoldAlreadyResolved):
        await ledger.capture(second.id, 1, idempotency_key="late")
    with pytest.raises(HoldNotFound):
        await ledger.void(999_999, idempotency_key="nope")
    assert await check_ledger(ledger.engine) == []


async def test_capture_after_timeout_raises_expired(ledger: Ledger, ledger_clock: FakeClock) -> None:
    await open_demo_accounts(ledger)
    await deposit(ledger, 1_000)
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=5, timeout_s=1
    )
    ledger_clock.advance(1)
    with pytest.raises(HoldExpired):
        await ledger.capture(hold.id, 5, idempotency_key="c")
    assert (await ledger.get_hold(hold.id)).state is HoldState.EXPIRED


async def test_expire_due_sweeps_only_due_holds(ledger: Ledger, ledger_clock: FakeClock) -> None:
    await open_demo_accounts(ledger)
    await deposit(ledger, 1_000)
    due = await ledger.hold(
        idempotency_key="a", debit_account=ALICE, credit_account=PAYABLE, amount=1, timeout_s=5
    )
    await ledger.hold(
        idempotency_key="b", debit_account=ALICE, credit_account=PAYABLE, amount=1, timeout_s=50
    )
    ledger_clock.advance(5)
    expired = await ledger.expire_due()
    assert [h.id for h in expired] == [due.id]
    assert await ledger.expire_due() == []
    assert len(await ledger.open_holds()) == 1


async def test_statement_and_trial_balance(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await deposit(ledger, 1_000)
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=400, timeout_s=9
    )
    await ledger.capture(hold.id, 300, idempotency_key="c")
    statement = await ledger.statement(ALICE)
    assert [(line.amount, line.balance_after) for line in statement.lines] == [(-1_000, 1_000), (300, 700)]
    trial = await ledger.trial_balance()
    assert trial.balanced
    assert trial.debits_by_unit == {"nano_usd": 1_300}
