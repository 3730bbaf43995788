"""Budgets in the ledger: periods open once with the amount, a changed amount adjusts the open period (a
decrease never undoes spend), and thresholds are recorded once per period.

Method: real migrations on SQLite and PostgreSQL, the ledger and the budget ledger on an injected clock, hold
groups taken and captured as billing does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ledger import HoldLeg, InsufficientFunds, Ledger, check_ledger, create_ledger_engine, migrate
from proxy.db.migrate import migrate_proxy
from proxy.governance.budgets import BudgetLedger, StoredBudgetAlerts
from proxy.governance.models import Budget, BudgetMode, ScopeKind
from proxy.governance.periods import Period
from tests.fixtures.clock import FakeClock


@pytest.fixture
async def budget_ledger(
    database_url: str,
) -> AsyncIterator[tuple[BudgetLedger, Ledger, FakeClock, StoredBudgetAlerts]]:
    engine = create_ledger_engine(database_url)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        clock = FakeClock(datetime(2026, 12, 15, 12, tzinfo=UTC).timestamp())
        ledger = Ledger(engine)
        alerts = StoredBudgetAlerts(engine)
        yield BudgetLedger(ledger, alerts=alerts, clock_unix_s=clock), ledger, clock, alerts
        assert await check_ledger(engine) == []
    finally:
        await engine.dispose()


def _budget(amount: int, *, mode: BudgetMode = BudgetMode.HARD, alert_at_bp: tuple[int, ...] = ()) -> Budget:
    return Budget(
        id=1,
        org_id=1,
        scope_kind=ScopeKind.UNIT,
        scope_id=2,
        amount_nano_usd=amount,
        period=Period.MONTH,
        mode=mode,
        alert_at_bp=alert_at_bp,
        created_at=0,
    )


async def _spend(ledger: Ledger, legs: list[HoldLeg], amount: int, key: str) -> None:
    group = await ledger.hold_group(idempotency_key=key, holds=legs, timeout_s=60)
    await ledger.capture_group(group.id, [amount] * len(legs), idempotency_key=f"{key}:capture")


async def test_amount_changes_adjust_the_open_period(
    budget_ledger: tuple[BudgetLedger, Ledger, FakeClock, StoredBudgetAlerts],
) -> None:
    budgets, ledger, _, _ = budget_ledger
    before = _budget(1_000)
    await _spend(ledger, await budgets.hold_legs([before], 600), 600, "r1")
    after = _budget(1_500)
    await budgets.adjust(before, after, change_id="c1")
    assert (await budgets.spend(after)).remaining_nano_usd == 900
    # A decrease below what was spent takes only what is left: spend stays, nothing goes negative.
    smaller = _budget(100)
    await budgets.adjust(after, smaller, change_id="c2")
    spend = await budgets.spend(smaller)
    assert (spend.spent_nano_usd, spend.remaining_nano_usd) == (600, 0)
    with pytest.raises(InsufficientFunds):
        await budgets.hold_legs([smaller], 1)


async def test_thresholds_are_recorded_once_per_period(
    budget_ledger: tuple[BudgetLedger, Ledger, FakeClock, StoredBudgetAlerts],
) -> None:
    budgets, ledger, clock, alerts = budget_ledger
    soft = _budget(1_000, mode=BudgetMode.SOFT, alert_at_bp=(5_000, 10_000))
    await _spend(ledger, await budgets.hold_legs([soft], 400), 400, "r1")
    assert await budgets.check_thresholds([soft]) == []
    await _spend(
        ledger, await budgets.hold_legs([soft], 700), 700, "r2"
    )  # soft: past its amount, not refused
    assert [c.threshold_bp for c in await budgets.check_thresholds([soft])] == [5_000, 10_000]
    assert await budgets.check_thresholds([soft]) == []
    # A fresh process (no memory of what it recorded) records nothing twice either.
    fresh = BudgetLedger(ledger, alerts=alerts, clock_unix_s=clock)
    assert await fresh.check_thresholds([soft]) == []
    clock.advance(31 * 86_400)  # next month: a new period, empty
    assert (await budgets.spend(soft)).spent_nano_usd == 0
    assert len(await alerts.all(soft.id)) == 2
