"""Hold groups against real SQLite and PostgreSQL: holds on several accounts placed all or none, resolved
together exactly once (capture on each and release the rest, void, or expiry as a whole), idempotent under
one key; and capture/void committing an extra posting and the caller's own writes (`also`) in the same
database transaction, never again on a replay.

Method: a payer (credit account) and a team budget (its own unit, like a governance quota pool) are funded,
then groups hold on both. Every test ends with `check_ledger` clean. Expiry is driven by the fake clock.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import (
    AccountFlags,
    AccountType,
    CaptureExceedsHold,
    CaptureLeg,
    ExtraTransaction,
    HoldAlreadyResolved,
    HoldExpired,
    HoldInGroup,
    HoldLeg,
    HoldNotFound,
    HoldState,
    IdempotencyConflict,
    InsufficientFunds,
    InTransaction,
    InvalidAmount,
    Ledger,
    Posting,
    UnitMismatch,
    check_ledger,
)
from tests.fixtures.ledger import FakeClock, open_demo_accounts
from tests.integration.ledger.test_ledger import ALICE, EXTERNAL, PAYABLE, deposit

BUDGET_UNIT = "budget_nano_usd"
BUDGET = "budget:team:1"
BUDGET_SPENT = "budget_spent:team:1"
BUDGET_SOURCE = "equity:budgets"
OTHER_PAYABLE = "provider_payable:anthropic"
OVERAGE_EXPENSE = "expense:usage_overage:openai"
GROUP_TABLES = ("ledger_hold_groups", "ledger_holds", "ledger_hold_group_resolutions", "ledger_transactions")


async def open_books(ledger: Ledger, *, credit_nano_usd: int, budget_nano_usd: int) -> None:
    """Alice's credit, a provider payable, and a team budget that must not go negative."""
    await open_demo_accounts(ledger)
    await ledger.ensure_account(OTHER_PAYABLE, type=AccountType.LIABILITY, unit="nano_usd")
    await ledger.ensure_account(OVERAGE_EXPENSE, type=AccountType.EXPENSE, unit="nano_usd")
    await ledger.ensure_account(BUDGET_SOURCE, type=AccountType.EQUITY, unit=BUDGET_UNIT)
    await ledger.ensure_account(
        BUDGET, type=AccountType.LIABILITY, unit=BUDGET_UNIT, flags=AccountFlags.MUST_NOT_GO_NEGATIVE
    )
    await ledger.ensure_account(BUDGET_SPENT, type=AccountType.LIABILITY, unit=BUDGET_UNIT)
    await deposit(ledger, credit_nano_usd)
    await ledger.post(
        idempotency_key="budget",
        code="budget_allot",
        postings=[(BUDGET_SOURCE, budget_nano_usd), (BUDGET, -budget_nano_usd)],
    )


def legs(amount: int, budget_amount: int | None = None) -> list[tuple[str, str, int]]:
    return [
        (ALICE, PAYABLE, amount),
        (BUDGET, BUDGET_SPENT, amount if budget_amount is None else budget_amount),
    ]


async def row_counts(ledger: Ledger) -> tuple[int, ...]:
    async with ledger.engine.connect() as conn:
        return tuple(
            [(await conn.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in GROUP_TABLES]
        )


async def pending(ledger: Ledger, *names: str) -> list[int]:
    return [(await ledger.balance(name)).pending for name in names]


# ------------------------------------------------------------------------------------------ placing


async def test_group_holds_on_every_account_at_once(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(
        idempotency_key="g",
        holds=legs(300),
        timeout_s=60,
        code="inference_hold",
        metadata={"request_id": "r"},
    )
    assert group.state is HoldState.PENDING
    assert [(h.debit_account, h.credit_account, h.amount, h.unit) for h in group.holds] == [
        (ALICE, PAYABLE, 300, "nano_usd"),
        (BUDGET, BUDGET_SPENT, 300, BUDGET_UNIT),
    ]
    assert all(h.group_id == group.id and h.metadata == {"request_id": "r"} for h in group.holds)
    assert all(h.expires_at_unix_ms == group.expires_at_unix_ms for h in group.holds)
    assert await pending(ledger, ALICE, BUDGET) == [300, 300]
    assert (await ledger.balance(BUDGET)).available == 200
    assert await ledger.get_hold_group(group.id) == group
    assert await check_ledger(ledger.engine) == []


async def test_one_account_short_holds_nothing_anywhere(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=100)
    before = await row_counts(ledger)
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=60)
    assert refused.value.account == BUDGET
    assert await pending(ledger, ALICE, PAYABLE, BUDGET, BUDGET_SPENT) == [0, 0, 0, 0]
    assert await row_counts(ledger) == before
    # Both short: the first account in the group's order is the one named.
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.hold_group(idempotency_key="g", holds=legs(5_000), timeout_s=60)
    assert refused.value.account == ALICE
    # The key was not used up by the refusals: the same key holds once the group fits.
    group = await ledger.hold_group(idempotency_key="g", holds=legs(100), timeout_s=60)
    assert len(group.holds) == 2
    assert await check_ledger(ledger.engine) == []


async def test_two_holds_on_one_account_add_up(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=100)
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.hold_group(
            idempotency_key="g", holds=[(ALICE, PAYABLE, 600), (ALICE, OTHER_PAYABLE, 401)], timeout_s=60
        )
    assert refused.value.account == ALICE
    group = await ledger.hold_group(
        idempotency_key="g", holds=[(ALICE, PAYABLE, 600), (ALICE, OTHER_PAYABLE, 400)], timeout_s=60
    )
    assert (await ledger.balance(ALICE)).available == 0
    assert await ledger.capture_group(group.id, [600, 0], idempotency_key="c")
    assert (await ledger.balance(ALICE)).posted == 400
    assert await check_ledger(ledger.engine) == []


async def test_single_hold_refusal_names_the_account(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=10, budget_nano_usd=10)
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.hold(
            idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=11, timeout_s=9
        )
    assert refused.value.account == ALICE


async def test_bad_groups_are_refused(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    with pytest.raises(UnitMismatch):
        await ledger.hold_group(idempotency_key="u", holds=[(ALICE, BUDGET_SPENT, 1)], timeout_s=60)
    with pytest.raises(InvalidAmount):
        await ledger.hold_group(idempotency_key="s", holds=[(ALICE, ALICE, 1)], timeout_s=60)
    with pytest.raises(ValueError, match="at least 1"):
        await ledger.hold_group(idempotency_key="e", holds=[], timeout_s=60)
    assert await row_counts(ledger) == (0, 0, 0, 2)


async def test_group_replay_returns_the_same_group_and_other_body_conflicts(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(100), timeout_s=60)
    counts = await row_counts(ledger)
    again = await ledger.hold_group(
        idempotency_key="g",
        holds=[HoldLeg(debit_account=d, credit_account=c, amount=a) for d, c, a in legs(100)],
        timeout_s=60,
    )
    assert again == group
    for body in (legs(100, 101), legs(100)[::-1], legs(100)[:1]):
        with pytest.raises(IdempotencyConflict):
            await ledger.hold_group(idempotency_key="g", holds=body, timeout_s=60)
    with pytest.raises(IdempotencyConflict):
        await ledger.hold_group(idempotency_key="g", holds=legs(100), timeout_s=61)
    assert await row_counts(ledger) == counts
    assert await pending(ledger, ALICE, BUDGET) == [100, 100]


# ---------------------------------------------------------------------------------------- resolving


async def test_capture_group_charges_each_and_releases_the_rest(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=60)
    with pytest.raises(CaptureExceedsHold):
        await ledger.capture_group(group.id, [120, 301], idempotency_key="c0")
    with pytest.raises(InvalidAmount):
        await ledger.capture_group(group.id, [120], idempotency_key="c0")
    captured = await ledger.capture_group(
        group.id, [CaptureLeg(amount=120, credit_account=OTHER_PAYABLE), 120], idempotency_key="c1"
    )
    assert captured.state is HoldState.CAPTURED
    assert [(h.state, h.captured_amount) for h in captured.holds] == [(HoldState.CAPTURED, 120)] * 2
    alice, budget = await ledger.balance(ALICE), await ledger.balance(BUDGET)
    assert (alice.posted, alice.pending, alice.available) == (880, 0, 880)
    assert (budget.posted, budget.pending, budget.available) == (380, 0, 380)
    assert (await ledger.balance(OTHER_PAYABLE)).posted == 120
    assert (await ledger.balance(PAYABLE)).posted == 0
    assert (await ledger.balance(BUDGET_SPENT)).posted == 120
    counts = await row_counts(ledger)
    replay = await ledger.capture_group(
        group.id, [CaptureLeg(amount=120, credit_account=OTHER_PAYABLE), 120], idempotency_key="c1"
    )
    assert replay == captured
    with pytest.raises(IdempotencyConflict):
        await ledger.capture_group(group.id, [120, 120], idempotency_key="c1")
    with pytest.raises(HoldAlreadyResolved):
        await ledger.capture_group(group.id, [1, 1], idempotency_key="c2")
    with pytest.raises(HoldAlreadyResolved):
        await ledger.void_group(group.id, idempotency_key="v")
    assert await row_counts(ledger) == counts
    assert await check_ledger(ledger.engine) == []


async def test_capture_of_zero_on_one_hold_releases_it(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=60)
    captured = await ledger.capture_group(group.id, [0, 50], idempotency_key="c")
    assert [h.resolution_transaction_id is None for h in captured.holds] == [True, False]
    assert [(await ledger.balance(n)).available for n in (ALICE, BUDGET)] == [1_000, 450]
    assert await check_ledger(ledger.engine) == []


async def test_redirect_into_another_unit_is_refused(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=60)
    with pytest.raises(UnitMismatch):
        await ledger.capture_group(
            group.id, [10, CaptureLeg(amount=10, credit_account=PAYABLE)], idempotency_key="c"
        )
    assert (await ledger.get_hold_group(group.id)).state is HoldState.PENDING
    assert await check_ledger(ledger.engine) == []


async def test_void_group_releases_everything(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=60)
    voided = await ledger.void_group(group.id, idempotency_key="v")
    assert voided.state is HoldState.VOIDED
    assert all(h.state is HoldState.VOIDED and h.captured_amount == 0 for h in voided.holds)
    assert await ledger.void_group(group.id, idempotency_key="v") == voided
    assert await pending(ledger, ALICE, BUDGET) == [0, 0]
    with pytest.raises(HoldNotFound):
        await ledger.void_group(group.id + 1_000, idempotency_key="v2")
    assert await check_ledger(ledger.engine) == []


async def test_members_are_resolved_only_with_their_group(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=60)
    member = group.holds[1]
    with pytest.raises(HoldInGroup):
        await ledger.capture(member.id, 10, idempotency_key="c")
    with pytest.raises(HoldInGroup):
        await ledger.void(member.id, idempotency_key="v")
    assert (await ledger.get_hold_group(group.id)).state is HoldState.PENDING
    assert await check_ledger(ledger.engine) == []


async def test_a_group_expires_as_a_whole(ledger: Ledger, ledger_clock: FakeClock) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=10)
    ledger_clock.advance(10)
    # Lazy expiry: reading ONE account's balance releases the group on every account.
    assert (await ledger.balance(BUDGET)).pending == 0
    assert (await ledger.balance(ALICE)).pending == 0
    expired = await ledger.get_hold_group(group.id)
    assert expired.state is HoldState.EXPIRED
    assert all(h.state is HoldState.EXPIRED for h in expired.holds)
    with pytest.raises(HoldAlreadyResolved):
        await ledger.capture_group(group.id, [1, 1], idempotency_key="late")
    assert await check_ledger(ledger.engine) == []


async def test_capture_of_a_due_group_expires_it_and_raises(ledger: Ledger, ledger_clock: FakeClock) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=1)
    ledger_clock.advance(1)
    ran: list[str] = []

    async def also(conn: AsyncConnection) -> None:
        ran.append("also")

    with pytest.raises(HoldExpired):
        await ledger.capture_group(group.id, [5, 5], idempotency_key="c", also=also)
    assert ran == []
    assert (await ledger.get_hold_group(group.id)).state is HoldState.EXPIRED
    assert await pending(ledger, ALICE, BUDGET) == [0, 0]
    assert await check_ledger(ledger.engine) == []


async def test_sweeper_expires_every_member(ledger: Ledger, ledger_clock: FakeClock) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(300), timeout_s=5)
    single = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=1, timeout_s=50
    )
    ledger_clock.advance(5)
    expired = await ledger.expire_due()
    assert sorted(h.id for h in expired) == sorted(h.id for h in group.holds)
    assert await ledger.expire_due() == []
    assert [h.id for h in await ledger.open_holds()] == [single.id]
    assert await check_ledger(ledger.engine) == []


# --------------------------------------------------------------------------- the caller's writes too


async def create_usage_table(ledger: Ledger) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE usage_test (request_id VARCHAR(64) PRIMARY KEY)"))


async def usage_rows(ledger: Ledger) -> list[str]:
    async with ledger.engine.connect() as conn:
        return list((await conn.execute(sa.text("SELECT request_id FROM usage_test"))).scalars().all())


def record_usage(request_id: str, calls: list[str]) -> InTransaction:
    async def also(conn: AsyncConnection) -> None:
        calls.append(request_id)
        await conn.execute(sa.text("INSERT INTO usage_test (request_id) VALUES (:r)"), {"r": request_id})

    return also


async def test_also_commits_with_the_capture_and_never_reruns(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    await create_usage_table(ledger)
    calls: list[str] = []
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=50, timeout_s=9
    )
    await ledger.capture(hold.id, 40, idempotency_key="c", also=record_usage("r1", calls))
    await ledger.capture(hold.id, 40, idempotency_key="c", also=record_usage("r1", calls))
    assert calls == ["r1"]
    assert await usage_rows(ledger) == ["r1"]
    group = await ledger.hold_group(idempotency_key="g", holds=legs(50), timeout_s=9)
    await ledger.void_group(group.id, idempotency_key="v", also=record_usage("r2", calls))
    await ledger.void_group(group.id, idempotency_key="v", also=record_usage("r2", calls))
    assert calls == ["r1", "r2"]
    assert sorted(await usage_rows(ledger)) == ["r1", "r2"]
    assert await check_ledger(ledger.engine) == []


async def test_also_is_not_run_when_the_ledger_refuses(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    await create_usage_table(ledger)
    calls: list[str] = []
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=50, timeout_s=9
    )
    with pytest.raises(CaptureExceedsHold):
        await ledger.capture(hold.id, 51, idempotency_key="c", also=record_usage("r1", calls))
    group = await ledger.hold_group(idempotency_key="g", holds=legs(50), timeout_s=9)
    with pytest.raises(CaptureExceedsHold):
        await ledger.capture_group(group.id, [50, 51], idempotency_key="cg", also=record_usage("r2", calls))
    assert calls == []
    assert await usage_rows(ledger) == []
    assert (await ledger.get_hold(hold.id)).state is HoldState.PENDING
    assert (await ledger.get_hold_group(group.id)).state is HoldState.PENDING


async def test_a_failing_also_rolls_the_capture_back(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    await create_usage_table(ledger)
    await usage_seed(ledger, "taken")
    calls: list[str] = []
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=50, timeout_s=9
    )
    group = await ledger.hold_group(idempotency_key="g", holds=legs(50), timeout_s=9)
    counts = await row_counts(ledger)
    # The caller's INSERT hits its own primary key: everything the ledger wrote is rolled back too.
    with pytest.raises(sa.exc.IntegrityError):
        await ledger.capture(hold.id, 40, idempotency_key="c", also=record_usage("taken", calls))
    with pytest.raises(sa.exc.IntegrityError):
        await ledger.capture_group(
            group.id, [40, 40], idempotency_key="cg", also=record_usage("taken", calls)
        )
    assert calls == ["taken", "taken"]  # Once each: the caller's IntegrityError is not retried.
    assert await row_counts(ledger) == counts
    assert (await ledger.get_hold(hold.id)).state is HoldState.PENDING
    assert (await ledger.balance(ALICE)).posted == 1_000
    # The same keys work afterwards: the failed attempts left nothing behind.
    captured = await ledger.capture(hold.id, 40, idempotency_key="c", also=record_usage("r1", calls))
    assert captured.state is HoldState.CAPTURED
    assert await check_ledger(ledger.engine) == []


async def usage_seed(ledger: Ledger, request_id: str) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO usage_test (request_id) VALUES (:r)"), {"r": request_id})


def overage(amount: int) -> ExtraTransaction:
    return ExtraTransaction(
        code="usage_overage",
        postings=(Posting(account=OVERAGE_EXPENSE, amount=amount), Posting(account=PAYABLE, amount=-amount)),
        metadata={"request_id": "r"},
    )


async def test_extra_posting_is_booked_with_the_capture_once(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=50, timeout_s=9
    )
    captured = await ledger.capture(hold.id, 50, idempotency_key="c", extra=overage(7))
    assert await ledger.capture(hold.id, 50, idempotency_key="c", extra=overage(7)) == captured
    with pytest.raises(IdempotencyConflict):
        await ledger.capture(hold.id, 50, idempotency_key="c", extra=overage(8))
    with pytest.raises(IdempotencyConflict):
        await ledger.capture(hold.id, 50, idempotency_key="c")
    booked = await ledger.transaction_by_idempotency_key(f"hold:{hold.id}:extra")
    assert booked is not None
    assert (booked.code, booked.metadata) == ("usage_overage", {"request_id": "r"})
    assert (await ledger.balance(PAYABLE)).posted == 57
    assert (await ledger.balance(OVERAGE_EXPENSE)).posted == 7
    group = await ledger.hold_group(idempotency_key="g", holds=legs(50), timeout_s=9)
    await ledger.capture_group(group.id, [50, 50], idempotency_key="cg", extra=overage(3))
    await ledger.capture_group(group.id, [50, 50], idempotency_key="cg", extra=overage(3))
    assert await ledger.transaction_by_idempotency_key(f"hold_group:{group.id}:extra") is not None
    assert (await ledger.balance(PAYABLE)).posted == 110
    assert await check_ledger(ledger.engine) == []


async def test_extra_posting_that_cannot_be_booked_undoes_the_capture(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    hold = await ledger.hold(
        idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=50, timeout_s=9
    )
    overdraw = ExtraTransaction(
        code="x", postings=(Posting(account=ALICE, amount=2_000), Posting(account=EXTERNAL, amount=-2_000))
    )
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.capture(hold.id, 50, idempotency_key="c", extra=overdraw)
    assert refused.value.account == ALICE
    assert (await ledger.get_hold(hold.id)).state is HoldState.PENDING
    assert (await ledger.balance(ALICE)).posted == 1_000
    assert await check_ledger(ledger.engine) == []


# ------------------------------------------------------------------------------------- the database


async def test_group_resolutions_are_append_only(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(50), timeout_s=9)
    await ledger.void_group(group.id, idempotency_key="v")
    for statement in (
        "UPDATE ledger_hold_group_resolutions SET kind = 'captured'",
        "DELETE FROM ledger_hold_group_resolutions",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with ledger.engine.begin() as conn:
                await conn.execute(sa.text(statement))


async def test_check_finds_a_member_out_of_step_with_its_group(ledger: Ledger) -> None:
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    group = await ledger.hold_group(idempotency_key="g", holds=legs(50), timeout_s=9)
    async with ledger.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE ledger_holds SET expires_at_unix_ms = expires_at_unix_ms + 1 WHERE id = :i"),
            {"i": group.holds[0].id},
        )
    assert [(p.kind, p.subject) for p in await check_ledger(ledger.engine)] == [
        ("hold_group_member_mismatch", f"hold group {group.id}")
    ]


async def test_single_hold_and_capture_cost_no_more_statements(ledger: Ledger) -> None:
    """Issue 10's throughput rests on the N=1 path: hold and capture issue exactly as many statements as
    before hold groups existed (measured on that code: SQLite counts its BEGIN IMMEDIATE)."""
    await open_books(ledger, credit_nano_usd=1_000, budget_nano_usd=500)
    warm = await ledger.hold(
        idempotency_key="w", debit_account=ALICE, credit_account=PAYABLE, amount=5, timeout_s=9
    )
    await ledger.capture(warm.id, 5, idempotency_key="wc")  # Fills the account-name cache, as in a server.
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    # Every engine: on SQLite the writes go through the ledger's batch writer (its own connection).
    event.listen(Engine, "before_cursor_execute", count)
    try:
        hold = await ledger.hold(
            idempotency_key="h", debit_account=ALICE, credit_account=PAYABLE, amount=5, timeout_s=9
        )
        hold_statements = len(statements)
        await ledger.capture(hold.id, 4, idempotency_key="c")
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    # SQLite's batch writer issues BEGIN IMMEDIATE on the driver once per batch (shared by many writes),
    # where the engine used to issue one per write: (7, 10) before counted it. Both accounts' sums are one
    # executemany since: (6, 9) and (6, 10) before.
    expected = {"sqlite": (5, 8), "postgresql": (5, 9)}[ledger.engine.dialect.name]
    assert (hold_statements, len(statements) - hold_statements) == expected, statements
