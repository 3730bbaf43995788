"""Budgets in the ledger: each period of a budget is a pair of accounts, and a request holds on both.

Per budget and period (`<key>` is e.g. `month-20261201`, or `total`), in the unit `budget_nano_usd` (memo
accounts, apart from real money):
- `budget:<id>:<key>` (liability) is the allowance, funded with the budget's amount when the period opens
  from `budget_limit:<id>` (equity). A hard budget's allowance must not go negative: that is the refusal;
  a soft budget's may (spend is counted, only thresholds alert).
- `budget_spent:<id>:<key>` (liability) receives what requests captured in that period.
A request's quote is held from each allowance towards its spent account in the same hold group as the
payer's hold (one database transaction, accounts locked in ascending id order), captured at the real cost
with the payer's capture, and released with it. A new period opens new accounts (idempotently: two replicas
opening it at once post one funding), and a closing entry returns the previous period's unspent allowance
to the limit account; the previous period's spend stays where it was booked, never overwritten.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import (
    AccountFlags,
    AccountNotFound,
    AccountType,
    HoldLeg,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    Posting,
)
from proxy.db.tables import org_budget_alerts
from proxy.governance.models import Budget, BudgetMode
from proxy.governance.periods import period_key, period_start_unix_s, previous_period_start_unix_s

__all__ = [
    "BUDGET_UNIT",
    "BudgetAlertSink",
    "BudgetCrossing",
    "BudgetLedger",
    "BudgetSpend",
    "StoredBudgetAlerts",
    "allowance_account",
    "limit_account",
    "spent_account",
]

BUDGET_UNIT = "budget_nano_usd"
BUDGET_OPEN_CODE = "budget_open"
BUDGET_CLOSE_CODE = "budget_close"
BUDGET_ADJUST_CODE = "budget_adjust"
BP_PER_WHOLE = 10_000
ADJUST_ATTEMPTS_MAX = 3
log = structlog.get_logger("megarouter.budgets")


def limit_account(budget_id: int) -> str:
    return f"budget_limit:{budget_id}"


def allowance_account(budget_id: int, key: str) -> str:
    return f"budget:{budget_id}:{key}"


def spent_account(budget_id: int, key: str) -> str:
    return f"budget_spent:{budget_id}:{key}"


@dataclass(frozen=True)
class BudgetCrossing:
    """A budget's spend in a period reached one of its thresholds (basis points of the amount)."""

    org_id: int
    budget_id: int
    period_start_unix_s: int
    threshold_bp: int
    spend_nano_usd: int
    amount_nano_usd: int
    crossed_at_unix_s: int


class BudgetAlertSink(Protocol):
    """Where threshold crossings go. Called once or more per crossing; must be idempotent per
    (budget, period, threshold). The lead wires the alert outbox here."""

    async def crossed(self, crossing: BudgetCrossing) -> bool:
        """True when this call recorded the crossing for the first time."""
        ...


class StoredBudgetAlerts:
    """Records crossings in `org_budget_alerts` (unique per budget, period and threshold)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def crossed(self, crossing: BudgetCrossing) -> bool:
        async with self._engine.begin() as conn:
            exists = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(org_budget_alerts)
                .where(
                    org_budget_alerts.c.budget_id == crossing.budget_id,
                    org_budget_alerts.c.period_start_unix_s == crossing.period_start_unix_s,
                    org_budget_alerts.c.threshold_bp == crossing.threshold_bp,
                )
            )
            if exists:
                return False
            try:
                await conn.execute(
                    org_budget_alerts.insert().values(
                        org_id=crossing.org_id,
                        budget_id=crossing.budget_id,
                        period_start_unix_s=crossing.period_start_unix_s,
                        threshold_bp=crossing.threshold_bp,
                        spend_nano_usd=crossing.spend_nano_usd,
                        amount_nano_usd=crossing.amount_nano_usd,
                        crossed_at_unix_s=crossing.crossed_at_unix_s,
                    )
                )
            except sa.exc.IntegrityError:
                return False  # Another replica recorded it first.
        return True

    async def all(self, budget_id: int) -> list[BudgetCrossing]:
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(org_budget_alerts)
                        .where(org_budget_alerts.c.budget_id == budget_id)
                        .order_by(org_budget_alerts.c.period_start_unix_s, org_budget_alerts.c.threshold_bp)
                    )
                )
                .mappings()
                .all()
            )
        return [
            BudgetCrossing(**{name: row[name] for name in BudgetCrossing.__dataclass_fields__})
            for row in rows
        ]


@dataclass(frozen=True)
class BudgetSpend:
    budget: Budget
    period_start_unix_s: int
    spent_nano_usd: int  # captured in the period
    held_nano_usd: int  # held by requests in flight
    remaining_nano_usd: int  # the allowance left (negative for a soft budget spent beyond its amount)


class BudgetLedger:
    """Opens budget periods in the ledger, builds a request's budget holds, reads spend, records crossings."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        alerts: BudgetAlertSink,
        clock_unix_s: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._alerts = alerts
        self._clock_unix_s = clock_unix_s
        # Periods this process has seen open: opening is idempotent, this only saves the round trips.
        self._opened: set[tuple[int, str]] = set()
        # Crossings this process has recorded: the sink is idempotent, this only saves the round trips.
        self._crossed: set[tuple[int, int, int]] = set()

    def now_unix_s(self) -> int:
        return int(self._clock_unix_s())

    async def hold_legs(self, budgets: Sequence[Budget], amount_nano_usd: int) -> list[HoldLeg]:
        """One hold per budget, in the given order, each period opened first."""
        assert amount_nano_usd > 0
        now = self.now_unix_s()
        legs = []
        for budget in budgets:
            key = await self._open_period(budget, now)
            if budget.mode is BudgetMode.HARD:
                await self._precheck(allowance_account(budget.id, key), amount_nano_usd)
            legs.append(
                HoldLeg(
                    debit_account=allowance_account(budget.id, key),
                    credit_account=spent_account(budget.id, key),
                    amount=amount_nano_usd,
                )
            )
        return legs

    async def _precheck(self, allowance: str, amount_nano_usd: int) -> None:
        """Refuses without taking any lock when the committed allowance already cannot fit the quote.

        Safe both ways: the hold group's check under the row locks still decides every request that passes
        here, and a refusal here saw an allowance that only holds released since could have raised. Under
        load this keeps refused requests from queueing on the budget's row lock behind the admitted ones.
        """
        available = (await self._ledger.balance(allowance)).available
        if available < amount_nano_usd:
            raise InsufficientFunds(
                f"{allowance} has {available} available, {amount_nano_usd} asked", account=allowance
            )

    async def _open_period(self, budget: Budget, now_unix_s: int) -> str:
        start = period_start_unix_s(budget.period, now_unix_s)
        key = period_key(budget.period, start)
        if (budget.id, key) in self._opened:
            return key
        flags = AccountFlags.MUST_NOT_GO_NEGATIVE if budget.mode is BudgetMode.HARD else AccountFlags.NONE
        allowance, spent = allowance_account(budget.id, key), spent_account(budget.id, key)
        await self._ledger.ensure_account(limit_account(budget.id), type=AccountType.EQUITY, unit=BUDGET_UNIT)
        await self._ledger.ensure_account(
            allowance, type=AccountType.LIABILITY, unit=BUDGET_UNIT, flags=flags
        )
        await self._ledger.ensure_account(spent, type=AccountType.LIABILITY, unit=BUDGET_UNIT)
        # IdempotencyConflict: opened by another process with the amount of its time (an update posts its
        # own adjustment).
        with contextlib.suppress(IdempotencyConflict):
            await self._ledger.post(
                idempotency_key=f"{allowance}:open",
                code=BUDGET_OPEN_CODE,
                postings=[
                    Posting(account=limit_account(budget.id), amount=budget.amount_nano_usd),
                    Posting(account=allowance, amount=-budget.amount_nano_usd),
                ],
                metadata={"budget_id": budget.id, "period_start_unix_s": start},
            )
        await self._close_previous(budget, start)
        self._opened.add((budget.id, key))
        return key

    async def _close_previous(self, budget: Budget, start_unix_s: int) -> None:
        """The closing entry of the period before: its unspent allowance goes back to the limit account."""
        previous_start = previous_period_start_unix_s(budget.period, start_unix_s)
        if previous_start is None:
            return
        previous = allowance_account(budget.id, period_key(budget.period, previous_start))
        try:
            balance = await self._ledger.balance(previous)
        except AccountNotFound:
            return
        # Holds of requests still in flight stay covered; they resolve against the period they began in.
        if balance.available <= 0:
            return
        # Either error: closed already (by another process, with the balance of its time).
        with contextlib.suppress(IdempotencyConflict, InsufficientFunds):
            await self._ledger.post(
                idempotency_key=f"{previous}:close",
                code=BUDGET_CLOSE_CODE,
                postings=[
                    Posting(account=previous, amount=balance.available),
                    Posting(account=limit_account(budget.id), amount=-balance.available),
                ],
                metadata={"budget_id": budget.id, "period_start_unix_s": previous_start},
            )

    async def adjust(self, before: Budget, after: Budget, *, change_id: str) -> None:
        """After an amount change: the open period's allowance moves by the difference (a decrease takes at
        most what is left; spend is never undone). A decrease racing with new holds reads the allowance
        again and takes what is left then."""
        start = period_start_unix_s(after.period, self.now_unix_s())
        allowance = allowance_account(after.id, period_key(after.period, start))
        for attempt in range(ADJUST_ATTEMPTS_MAX):
            delta = after.amount_nano_usd - before.amount_nano_usd
            try:
                balance = await self._ledger.balance(allowance)
            except AccountNotFound:
                return  # The period opens later, with the new amount.
            if delta < 0 and after.mode is BudgetMode.HARD:
                delta = -min(-delta, max(balance.available, 0))
            if delta == 0:
                return
            try:
                await self._ledger.post(
                    idempotency_key=f"{allowance}:adjust:{change_id}",
                    code=BUDGET_ADJUST_CODE,
                    postings=[
                        Posting(account=limit_account(after.id), amount=delta),
                        Posting(account=allowance, amount=-delta),
                    ],
                    metadata={"budget_id": after.id, "period_start_unix_s": start},
                )
                return
            except InsufficientFunds:
                if attempt == ADJUST_ATTEMPTS_MAX - 1:
                    raise

    @staticmethod
    def budget_of_account(name: str) -> int | None:
        """The budget id of an allowance account name (what a refused hold names), else None."""
        parts = name.split(":")
        if len(parts) == 3 and parts[0] == "budget" and parts[1].isdigit():
            return int(parts[1])
        return None

    async def spend(self, budget: Budget, *, at_unix_s: int | None = None) -> BudgetSpend:
        """A budget's spend in the period containing `at_unix_s` (default: now)."""
        start = period_start_unix_s(budget.period, self.now_unix_s() if at_unix_s is None else at_unix_s)
        key = period_key(budget.period, start)
        try:
            spent = await self._ledger.balance(spent_account(budget.id, key))
            allowance = await self._ledger.balance(allowance_account(budget.id, key))
        except AccountNotFound:
            return BudgetSpend(budget, start, 0, 0, budget.amount_nano_usd)
        return BudgetSpend(
            budget=budget,
            period_start_unix_s=start,
            spent_nano_usd=spent.posted,
            held_nano_usd=allowance.pending,
            remaining_nano_usd=allowance.available,
        )

    async def check_thresholds(self, budgets: Sequence[Budget]) -> list[BudgetCrossing]:
        """Records every threshold the budgets' current spend has reached; returns those newly recorded.

        Level-triggered (spend ≥ threshold, not "this request crossed it"): a crossing missed because a
        process died is recorded by the next request's check.
        """
        now = self.now_unix_s()
        recorded = []
        for budget in budgets:
            if not budget.alert_at_bp:
                continue
            start = period_start_unix_s(budget.period, now)
            pending = [bp for bp in budget.alert_at_bp if (budget.id, start, bp) not in self._crossed]
            if not pending:
                continue
            spend = (await self.spend(budget, at_unix_s=now)).spent_nano_usd
            for threshold_bp in pending:
                if spend * BP_PER_WHOLE < threshold_bp * budget.amount_nano_usd:
                    break  # Thresholds are ascending.
                crossing = BudgetCrossing(
                    org_id=budget.org_id,
                    budget_id=budget.id,
                    period_start_unix_s=start,
                    threshold_bp=threshold_bp,
                    spend_nano_usd=spend,
                    amount_nano_usd=budget.amount_nano_usd,
                    crossed_at_unix_s=now,
                )
                if await self._alerts.crossed(crossing):
                    recorded.append(crossing)
                    log.warning(
                        "budget_threshold_crossed",
                        budget_id=budget.id,
                        threshold_bp=threshold_bp,
                        spend_nano_usd=spend,
                        amount_nano_usd=budget.amount_nano_usd,
                        mode=budget.mode.value,
                    )
                self._crossed.add((budget.id, start, threshold_bp))
        return recorded
