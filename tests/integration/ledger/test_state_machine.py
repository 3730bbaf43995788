"""Model-based test: a Hypothesis state machine drives the ledger with random deposits, withdrawals, holds,
captures, voids, hold groups (placed on several accounts at once, captured, voided, expired as a whole),
clock moves, sweeps, replays (same body and different body) and reconciliations, on SQLite and PostgreSQL.

Hold groups span the customers' credit accounts and a team budget kept in a unit of its own (as governance
will hold a request's quote on the payer and on every budget above it): a group is placed only if every
account can carry all of the group's holds on it, and a refusal names the first account in the group's
order that cannot.

After every step it checks the books (`check_ledger`: every transaction sums to zero, per unit the totals
balance, cached balances equal the entries and open holds, no credit account below zero, each hold resolved
at most once), checks that debits equal credits over all accounts, compares every balance and hold state with
a plain-Python model, and checks that replays add no rows.

Reconciliation: deposits and withdrawals move tokens through a settlement wallet (`cash:...`), and the machine
keeps its own model of the chain: one `ExternalMovement` (external_ref, direction, amount) per deposit or
withdrawal it books, and the wallet's balance. `reconcile` runs `reconcile_and_record` against that model and
expects no break, and that the run is stored and books nothing. `plant_divergence` changes the MODEL only
(an unbooked transfer, a changed amount, a dropped or doubled transfer, a wrong wallet balance), expects
exactly the one break of that kind, and removes the divergence again. A planted movement leaves the observed
wallet balance honest, so each plant yields one break rather than that break plus a balance mismatch (the
pure tests in tests/unit/ledger/test_reconcile.py cover the kinds one by one too). The invariants read every
hold, which expires due ones lazily, so no hold is ever left pending past its timeout when `reconcile` runs:
expired_hold_not_released and stale_in_transit (no in-transit account here) are not expected, and not planted.

Bridging: the test is sync (Hypothesis drives it); the async ledger runs on a dedicated event loop in a
background thread, so nothing touches pytest-asyncio's session loop and no loop is ever nested. Each example
gets an empty ledger of its own (a new SQLite file, or a new schema in the test's PostgreSQL database), so a
failing example cannot leak into the next one while Hypothesis shrinks.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import (
    AccountFlags,
    AccountType,
    CaptureExceedsHold,
    HoldAlreadyResolved,
    HoldExpired,
    HoldGroup,
    HoldInGroup,
    HoldState,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    LedgerError,
    check_ledger,
    create_ledger_engine,
    migrate,
)
from ledger.chart import cash
from ledger.reconcile import (
    Break,
    BreakKind,
    Direction,
    ExternalMovement,
    MatchResult,
    ObservedBalance,
    ReconcileRun,
    list_runs,
    reconcile_and_record,
    run_breaks,
)
from tests.fixtures.ledger import FakeClock

T = TypeVar("T")
STEP_TIMEOUT_S = 30.0
CUSTOMERS = 2
UNIT = "nano_usd"
COUNTED_TABLES = (
    "ledger_transactions",
    "ledger_entries",
    "ledger_holds",
    "ledger_hold_resolutions",
    "ledger_hold_groups",
    "ledger_hold_group_resolutions",
)
BUDGET_UNIT = "budget_nano_usd"
NETWORK = "eip155:31337"
TOKEN_ADDRESS = "0x" + "a0" * 20
SETTLEMENT_WALLET_ADDRESS = "0x" + "b1" * 20
# Planting one of these needs a transfer already in the model; the others can be planted on an empty chain.
PLANTS_ON_A_MOVEMENT = (BreakKind.AMOUNT_MISMATCH, BreakKind.MISSING_ON_CHAIN, BreakKind.DUPLICATE)
PLANTS_ALWAYS = (BreakKind.MISSING_IN_LEDGER, BreakKind.BALANCE_MISMATCH)
# What a break must say, without its human-readable detail: kind, ref, account, ledger side, chain side.
BreakFacts = tuple[BreakKind, str | None, str | None, int | None, int | None]


class LoopThread:
    """An event loop running in its own thread; `run` submits a coroutine and waits (bounded) for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ledger-state-machine", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=STEP_TIMEOUT_S)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=STEP_TIMEOUT_S)
        self.loop.close()


async def fresh_engine(url: str, name: str) -> AsyncEngine:
    """A ledger engine on an empty database of its own, derived from the test's database URL."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        assert parsed.database is not None
        return create_ledger_engine(
            str(parsed.set(database=str(Path(parsed.database).with_name(f"{name}.db"))))
        )
    schema = f"ledger_sm_{name}"
    admin = create_ledger_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        await admin.dispose()
    return create_ledger_engine(url, connect_args={"server_settings": {"search_path": schema}})


@dataclass
class ModelHold:
    id: int
    customer: str  # The debit account: a customer's credit, or the budget for a group's budget hold.
    amount: int
    expires_at_unix_ms: int
    state: HoldState = HoldState.PENDING
    captured: int = 0
    credit_account: str = ""
    group: int | None = None


@dataclass
class ModelGroup:
    id: int
    holds: list[ModelHold]

    @property
    def state(self) -> HoldState:
        return self.holds[0].state


@dataclass
class ChainModel:
    """What the chain would show for the settlement wallet: each transfer, and the wallet's token balance."""

    movements: list[ExternalMovement] = field(default_factory=list)
    balance_nano_usd: int = 0

    def add(self, movement: ExternalMovement) -> None:
        self.movements.append(movement)
        self.balance_nano_usd += movement.signed_nano_usd


@dataclass
class ReconcileOutcome:
    run: ReconcileRun
    result: MatchResult
    stored_latest: ReconcileRun
    stored_breaks: list[Break]
    rows_before: tuple[int, ...]
    rows_after: tuple[int, ...]


def break_facts(item: Break) -> BreakFacts:
    return (
        item.kind,
        item.external_ref,
        item.account,
        item.ledger_amount_nano_usd,
        item.external_amount_nano_usd,
    )


@dataclass
class Recorded:
    """A successful write, kept to replay with the same or a different body."""

    kind: str
    kwargs: dict[str, Any]
    result: Any


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""
    runner: LoopThread | None = None
    # Set by _run_machine: how often the reconcile rules did real work, so a fixed seed that stops
    # exercising them fails the test instead of passing quietly.
    tally: Counter[str] | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.runner is not None
        self.prefix = uuid.uuid4().hex[:10]
        self.clock = FakeClock()
        self.engine: AsyncEngine = self.run(fresh_engine(self.url, self.prefix))
        self.ledger = Ledger(self.engine, clock=self.clock)
        # Each example has a database of its own, so the wallet's name needs no prefix to be unique.
        self.cash = cash(NETWORK, TOKEN_ADDRESS, SETTLEMENT_WALLET_ADDRESS)
        self.payable = f"provider_payable:{self.prefix}"
        self.customers = [f"credit:account:{self.prefix}-{i}" for i in range(CUSTOMERS)]
        self.budget = f"budget:team:{self.prefix}"
        self.budget_spent = f"budget_spent:team:{self.prefix}"
        self.budget_source = f"equity:budgets:{self.prefix}"
        # Balances on each account's normal side: debits for the cash asset, credits for the liabilities
        # (the budget's equity source, debited to fund it, is not modelled).
        self.posted = dict.fromkeys(
            [self.cash, self.payable, *self.customers, self.budget, self.budget_spent], 0
        )
        self.budget_accounts = (self.budget, self.budget_spent)
        self.groups: list[ModelGroup] = []
        self.chain = ChainModel()
        self.holds: list[ModelHold] = []
        self.recorded: list[Recorded] = []
        self.counter = 0
        self.run(self._open())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self.runner is not None
        return self.runner.run(coroutine)

    async def _open(self) -> None:
        await migrate(self.engine)
        await self.ledger.ensure_account(self.cash, type=AccountType.ASSET, unit=UNIT)
        await self.ledger.ensure_account(self.payable, type=AccountType.LIABILITY, unit=UNIT)
        for name in self.customers:
            flags = AccountFlags.MUST_NOT_GO_NEGATIVE
            await self.ledger.ensure_account(name, type=AccountType.LIABILITY, unit=UNIT, flags=flags)
        flags = AccountFlags.MUST_NOT_GO_NEGATIVE
        await self.ledger.ensure_account(
            self.budget, type=AccountType.LIABILITY, unit=BUDGET_UNIT, flags=flags
        )
        await self.ledger.ensure_account(self.budget_spent, type=AccountType.LIABILITY, unit=BUDGET_UNIT)
        await self.ledger.ensure_account(self.budget_source, type=AccountType.EQUITY, unit=BUDGET_UNIT)

    def teardown(self) -> None:
        self.run(self.engine.dispose())

    # ----------------------------------------------------------------------------------------- model

    def key(self, kind: str) -> str:
        self.counter += 1
        return f"{self.prefix}:{kind}:{self.counter}"

    def expire_model(self) -> None:
        for hold in self.holds:
            if hold.state is HoldState.PENDING and hold.expires_at_unix_ms <= self.clock.now_unix_ms:
                hold.state = HoldState.EXPIRED

    def available(self, customer: str) -> int:
        self.expire_model()
        held = sum(h.amount for h in self.holds if h.customer == customer and h.state is HoldState.PENDING)
        return self.posted[customer] - held

    def chain_ref(self) -> str:
        """A fresh external_ref shaped like the chain's (chain id, tx hash, log index)."""
        self.counter += 1
        return f"31337:0x{self.prefix}{self.counter:054x}:0"

    def book_movement(
        self, *, kind: str, customer: str, amount: int
    ) -> tuple[dict[str, Any], ExternalMovement]:
        """The post() arguments for a deposit or withdrawal through the wallet, and the transfer behind it."""
        direction = Direction.IN if kind == "deposit" else Direction.OUT
        movement = ExternalMovement(
            external_ref=self.chain_ref(), direction=direction, account=self.cash, amount_nano_usd=amount
        )
        kwargs: dict[str, Any] = {
            "idempotency_key": self.key(kind),
            "code": kind,
            # Debits are positive: a deposit debits the wallet and credits the customer.
            "postings": [(self.cash, movement.signed_nano_usd), (customer, -movement.signed_nano_usd)],
            "external_ref": movement.external_ref,
        }
        return kwargs, movement

    async def reconcile_against(
        self, movements: list[ExternalMovement], *, balance_nano_usd: int
    ) -> ReconcileOutcome:
        """Run and store a reconciliation, then read back what it stored and count the ledger's rows."""
        before = await self.row_counts()
        run, result = await reconcile_and_record(
            self.ledger,
            external=movements,
            observed_balances=[ObservedBalance(account=self.cash, balance_nano_usd=balance_nano_usd)],
            now_unix_ms=self.clock.now_unix_ms,
        )
        after = await self.row_counts()
        latest = await list_runs(self.engine, limit=1)
        stored = await run_breaks(self.engine, run.id)
        return ReconcileOutcome(run, result, latest[0], stored, before, after)

    def check_reconcile(self, outcome: ReconcileOutcome, *, movements_count: int) -> None:
        """What holds for any run: it is the newest stored one, with its breaks, and it booked nothing."""
        assert outcome.stored_latest == outcome.run
        assert outcome.run.movements_count == movements_count
        assert outcome.run.breaks_count == len(outcome.result.breaks)
        assert outcome.run.matched_count == len(outcome.result.matched)
        assert [break_facts(b) for b in outcome.stored_breaks] == [
            break_facts(b) for b in outcome.result.breaks
        ]
        assert outcome.rows_after == outcome.rows_before

    async def row_counts(self) -> tuple[int, ...]:
        async with self.engine.connect() as conn:
            return tuple(
                [
                    (await conn.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one()
                    for t in COUNTED_TABLES
                ]
            )

    # ----------------------------------------------------------------------------------------- rules

    @initialize(
        amounts=st.lists(st.integers(1, 1_000), min_size=CUSTOMERS, max_size=CUSTOMERS),
        budget=st.integers(1, 1_500),
    )
    def opening_deposits(self, amounts: list[int], budget: int) -> None:
        """Fund every customer and the budget first: with few steps per example, holds, withdrawals,
        replays and the reconciliation of real transfers would otherwise often run against an empty
        ledger. The budget's allotment moves no tokens, so the chain model does not see it."""
        for customer, amount in enumerate(amounts):
            self.deposit(customer, amount)
        postings = [(self.budget_source, budget), (self.budget, -budget)]
        self.run(self.ledger.post(idempotency_key=self.key("budget"), code="budget_allot", postings=postings))
        self.posted[self.budget] += budget

    @rule(customer=st.integers(0, CUSTOMERS - 1), amount=st.integers(1, 1_000))
    def deposit(self, customer: int, amount: int) -> None:
        name = self.customers[customer]
        kwargs, movement = self.book_movement(kind="deposit", customer=name, amount=amount)
        result = self.run(self.ledger.post(**kwargs))
        self.posted[self.cash] += amount
        self.posted[name] += amount
        self.chain.add(movement)
        self.recorded.append(Recorded("post", kwargs, result))

    @rule(customer=st.integers(0, CUSTOMERS - 1), amount=st.integers(1, 1_500))
    def withdraw(self, customer: int, amount: int) -> None:
        name = self.customers[customer]
        kwargs, movement = self.book_movement(kind="withdraw", customer=name, amount=amount)
        enough = amount <= self.available(name)
        try:
            result = self.run(self.ledger.post(**kwargs))
        except InsufficientFunds:
            # Refused before anything was sent: the chain shows no transfer.
            assert not enough
            return
        assert enough
        self.posted[self.cash] -= amount
        self.posted[name] -= amount
        self.chain.add(movement)
        self.recorded.append(Recorded("post", kwargs, result))

    @rule(customer=st.integers(0, CUSTOMERS - 1), amount=st.integers(1, 800), timeout_s=st.integers(1, 60))
    def hold(self, customer: int, amount: int, timeout_s: int) -> None:
        name = self.customers[customer]
        kwargs: dict[str, Any] = {
            "idempotency_key": self.key("hold"),
            "debit_account": name,
            "credit_account": self.payable,
            "amount": amount,
            "timeout_s": timeout_s,
        }
        enough = amount <= self.available(name)
        try:
            result = self.run(self.ledger.hold(**kwargs))
        except InsufficientFunds:
            assert not enough
            return
        assert enough
        expires_at_unix_ms = self.clock.now_unix_ms + timeout_s * 1000
        self.holds.append(ModelHold(result.id, name, amount, expires_at_unix_ms, credit_account=self.payable))
        self.recorded.append(Recorded("hold", kwargs, result))

    def single_holds(self) -> list[ModelHold]:
        return [hold for hold in self.holds if hold.group is None]

    @precondition(lambda self: bool(self.single_holds()))
    @rule(data=st.data(), fraction=st.integers(0, 120))
    def capture(self, data: st.DataObject, fraction: int) -> None:
        hold = data.draw(st.sampled_from(self.single_holds()))
        self.expire_model()
        amount = hold.amount * fraction // 100
        kwargs: dict[str, Any] = {
            "hold_id": hold.id,
            "amount": amount,
            "idempotency_key": self.key("capture"),
        }
        try:
            result = self.run(self.ledger.capture(**kwargs))
        except (HoldAlreadyResolved, HoldExpired):
            assert hold.state is not HoldState.PENDING
            return
        except CaptureExceedsHold:
            assert hold.state is HoldState.PENDING
            assert amount > hold.amount
            return
        assert hold.state is HoldState.PENDING
        assert amount <= hold.amount
        hold.state, hold.captured = HoldState.CAPTURED, amount
        self.posted[hold.customer] -= amount
        self.posted[self.payable] += amount
        self.recorded.append(Recorded("capture", kwargs, result))

    @precondition(lambda self: bool(self.single_holds()))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from(self.single_holds()))
        self.expire_model()
        kwargs: dict[str, Any] = {"hold_id": hold.id, "idempotency_key": self.key("void")}
        try:
            result = self.run(self.ledger.void(**kwargs))
        except (HoldAlreadyResolved, HoldExpired):
            assert hold.state is not HoldState.PENDING
            return
        assert hold.state is HoldState.PENDING
        hold.state = HoldState.VOIDED
        self.recorded.append(Recorded("void", kwargs, result))

    # ------------------------------------------------------------------------------------ hold groups

    def group_leg(self, debit: int, amount: int) -> tuple[str, str, int]:
        """Debit index CUSTOMERS is the budget (towards its spent account); the others are customers."""
        if debit == CUSTOMERS:
            return (self.budget, self.budget_spent, amount)
        return (self.customers[debit], self.payable, amount)

    def first_short_account(self, legs: list[tuple[str, str, int]]) -> str | None:
        """The first debit account, in the group's order, that cannot carry all the group's holds on it."""
        wanted: Counter[str] = Counter()
        for debit, _, amount in legs:
            wanted[debit] += amount
        return next((name for name in wanted if wanted[name] > self.available(name)), None)

    @rule(
        debits=st.lists(st.integers(0, CUSTOMERS), min_size=1, max_size=3),
        amounts=st.lists(st.integers(1, 600), min_size=3, max_size=3),
        timeout_s=st.integers(1, 60),
    )
    def hold_group(self, debits: list[int], amounts: list[int], timeout_s: int) -> None:
        legs = [self.group_leg(debit, amount) for debit, amount in zip(debits, amounts, strict=False)]
        kwargs: dict[str, Any] = {
            "idempotency_key": self.key("hold_group"),
            "holds": legs,
            "timeout_s": timeout_s,
        }
        short = self.first_short_account(legs)
        refused_account: str | None = None
        try:
            result = self.run(self.ledger.hold_group(**kwargs))
        except InsufficientFunds as refused:
            refused_account = refused.account
        if refused_account is not None:
            assert refused_account == short
            self.count("hold_group_refused")
            return
        assert short is None
        assert [(h.debit_account, h.credit_account, h.amount) for h in result.holds] == legs
        expires_at_unix_ms = self.clock.now_unix_ms + timeout_s * 1000
        members = [
            ModelHold(
                hold.id,
                hold.debit_account,
                hold.amount,
                expires_at_unix_ms,
                credit_account=hold.credit_account,
                group=result.id,
            )
            for hold in result.holds
        ]
        self.holds += members
        self.groups.append(ModelGroup(result.id, members))
        self.recorded.append(Recorded("hold_group", kwargs, result))
        self.count("hold_group")

    @precondition(lambda self: bool(self.groups))
    @rule(data=st.data(), fractions=st.lists(st.integers(0, 110), min_size=3, max_size=3))
    def capture_group(self, data: st.DataObject, fractions: list[int]) -> None:
        group = data.draw(st.sampled_from(self.groups))
        self.expire_model()
        amounts = [
            hold.amount * fraction // 100 for hold, fraction in zip(group.holds, fractions, strict=False)
        ]
        kwargs: dict[str, Any] = {
            "group_id": group.id,
            "captures": amounts,
            "idempotency_key": self.key("capture_group"),
        }
        try:
            result = self.run(self.ledger.capture_group(**kwargs))
        except (HoldAlreadyResolved, HoldExpired):
            assert group.state is not HoldState.PENDING
            return
        except CaptureExceedsHold:
            assert group.state is HoldState.PENDING
            assert any(amount > hold.amount for amount, hold in zip(amounts, group.holds, strict=True))
            return
        assert group.state is HoldState.PENDING
        assert all(amount <= hold.amount for amount, hold in zip(amounts, group.holds, strict=True))
        for hold, amount in zip(group.holds, amounts, strict=True):
            hold.state, hold.captured = HoldState.CAPTURED, amount
            self.posted[hold.customer] -= amount
            self.posted[hold.credit_account] += amount
        self.recorded.append(Recorded("capture_group", kwargs, result))
        self.count("capture_group")

    @precondition(lambda self: bool(self.groups))
    @rule(data=st.data())
    def void_group(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.groups))
        self.expire_model()
        kwargs: dict[str, Any] = {"group_id": group.id, "idempotency_key": self.key("void_group")}
        try:
            result = self.run(self.ledger.void_group(**kwargs))
        except (HoldAlreadyResolved, HoldExpired):
            assert group.state is not HoldState.PENDING
            return
        assert group.state is HoldState.PENDING
        for hold in group.holds:
            hold.state = HoldState.VOIDED
        self.recorded.append(Recorded("void_group", kwargs, result))
        self.count("void_group")

    @precondition(lambda self: bool(self.groups))
    @rule(data=st.data(), capture=st.booleans())
    def resolve_a_member_alone(self, data: st.DataObject, capture: bool) -> None:
        """A group's hold is resolved only with its group, whatever state it is in."""
        hold = data.draw(st.sampled_from(data.draw(st.sampled_from(self.groups)).holds))
        key = self.key("member")
        before = self.run(self.row_counts())
        try:
            if capture:
                self.run(self.ledger.capture(hold.id, 0, idempotency_key=key))
            else:
                self.run(self.ledger.void(hold.id, idempotency_key=key))
        except HoldInGroup:
            pass
        else:
            raise AssertionError("a group's hold must refuse a resolution of its own")
        assert self.run(self.row_counts()) == before

    def count(self, what: str) -> None:
        assert self.tally is not None
        self.tally[what] += 1

    @rule(seconds=st.integers(0, 45), sweep=st.booleans())
    def advance_clock(self, seconds: int, sweep: bool) -> None:
        self.clock.advance(seconds)
        if sweep:
            expired = self.run(self.ledger.expire_due())
            assert all(h.state is HoldState.EXPIRED for h in expired)

    @precondition(lambda self: bool(self.recorded))
    @rule(data=st.data())
    def replay_same_body(self, data: st.DataObject) -> None:
        recorded = data.draw(st.sampled_from(self.recorded))
        before = self.run(self.row_counts())
        again = self.run(self._call(recorded.kind, recorded.kwargs))
        if recorded.kind == "post":
            assert again == recorded.result
        else:
            assert again.id == recorded.result.id
        assert self.run(self.row_counts()) == before

    @precondition(lambda self: bool(self.recorded))
    @rule(data=st.data())
    def replay_different_body(self, data: st.DataObject) -> None:
        recorded = data.draw(st.sampled_from(self.recorded))
        kwargs = dict(recorded.kwargs)
        if recorded.kind == "post":
            kwargs["postings"] = [(name, amount * 2) for name, amount in kwargs["postings"]]
        elif recorded.kind in ("hold", "capture"):
            kwargs["amount"] += 1
        elif recorded.kind == "hold_group":
            kwargs["holds"] = [(debit, credit, amount + 1) for debit, credit, amount in kwargs["holds"]]
        elif recorded.kind == "capture_group":
            kwargs["captures"] = [amount + 1 for amount in kwargs["captures"]]
        elif recorded.kind == "void_group":
            kwargs["group_id"] += 1_000_000
        else:
            kwargs["hold_id"] += 1_000_000
        before = self.run(self.row_counts())
        try:
            self.run(self._call(recorded.kind, kwargs))
        except IdempotencyConflict:
            pass
        else:
            raise AssertionError("a different body under a used key must raise IdempotencyConflict")
        assert self.run(self.row_counts()) == before

    @rule()
    def reconcile(self) -> None:
        outcome = self.run(
            self.reconcile_against(list(self.chain.movements), balance_nano_usd=self.chain.balance_nano_usd)
        )
        assert outcome.result.breaks == (), outcome.result.breaks
        assert self.tally is not None
        self.tally["reconcile" if self.chain.movements else "reconcile_empty"] += 1
        assert sorted(outcome.result.matched) == sorted(
            (m.external_ref, r.result.id)
            for m, r in zip(self.chain.movements, self.booked_movements(), strict=True)
        )
        self.check_reconcile(outcome, movements_count=len(self.chain.movements))

    def booked_movements(self) -> list[Recorded]:
        """The recorded posts that moved tokens, in the order the chain model saw their transfers."""
        return [r for r in self.recorded if r.kind == "post"]

    @rule(data=st.data(), delta=st.integers(1, 500), direction=st.sampled_from(Direction))
    def plant_divergence(self, data: st.DataObject, delta: int, direction: Direction) -> None:
        """Make the chain model disagree with the ledger in one way, expect exactly that break, undo it."""
        kinds = PLANTS_ALWAYS + (PLANTS_ON_A_MOVEMENT if self.chain.movements else ())
        kind = data.draw(st.sampled_from(kinds))
        honest = ChainModel(list(self.chain.movements), self.chain.balance_nano_usd)
        expected = self.plant(kind, data=data, delta=delta, direction=direction)
        planted = list(self.chain.movements)
        try:
            outcome = self.run(self.reconcile_against(planted, balance_nano_usd=self.chain.balance_nano_usd))
        finally:
            self.chain = honest
        found = [break_facts(b) for b in outcome.result.breaks]
        assert found == [expected], (kind, expected, found)
        self.check_reconcile(outcome, movements_count=len(planted))
        assert self.tally is not None
        self.tally[f"plant:{kind.value}"] += 1

    def plant(self, kind: BreakKind, *, data: st.DataObject, delta: int, direction: Direction) -> BreakFacts:
        """Change self.chain for `kind` (a planted balance leaves the movements alone, and vice versa)."""
        if kind is BreakKind.BALANCE_MISMATCH:
            honest_balance = self.chain.balance_nano_usd
            self.chain.balance_nano_usd += delta if direction is Direction.IN else -delta
            return (kind, None, self.cash, honest_balance, self.chain.balance_nano_usd)
        if kind is BreakKind.MISSING_IN_LEDGER:
            unbooked = ExternalMovement(
                external_ref=self.chain_ref(), direction=direction, account=self.cash, amount_nano_usd=delta
            )
            self.chain.movements.append(unbooked)
            return (kind, unbooked.external_ref, self.cash, None, unbooked.signed_nano_usd)
        index = data.draw(st.integers(0, len(self.chain.movements) - 1))
        movement = self.chain.movements[index]
        ref = movement.external_ref
        if kind is BreakKind.AMOUNT_MISMATCH:
            changed = movement.model_copy(update={"amount_nano_usd": movement.amount_nano_usd + delta})
            self.chain.movements[index] = changed
            return (kind, ref, self.cash, movement.signed_nano_usd, changed.signed_nano_usd)
        if kind is BreakKind.MISSING_ON_CHAIN:
            del self.chain.movements[index]
            return (kind, ref, self.cash, movement.signed_nano_usd, None)
        assert kind is BreakKind.DUPLICATE
        self.chain.movements.append(movement)
        return (kind, ref, self.cash, None, None)

    async def _call(self, kind: str, kwargs: dict[str, Any]) -> Any:
        if kind == "post":
            return await self.ledger.post(**kwargs)
        if kind == "hold":
            return await self.ledger.hold(**kwargs)
        if kind == "capture":
            return await self.ledger.capture(**kwargs)
        if kind == "hold_group":
            return await self.ledger.hold_group(**kwargs)
        if kind == "capture_group":
            return await self.ledger.capture_group(**kwargs)
        if kind == "void_group":
            return await self.ledger.void_group(**kwargs)
        return await self.ledger.void(**kwargs)

    # -------------------------------------------------------------------------------------- invariants

    @invariant()
    def books_are_consistent(self) -> None:
        problems = self.run(check_ledger(self.engine))
        assert problems == [], problems

    @invariant()
    def balances_and_holds_match_the_model(self) -> None:
        self.expire_model()
        for name, posted in self.posted.items():
            balance = self.run(self.ledger.balance(name))
            assert balance.posted == posted, (name, balance, posted)
            if name in self.customers or name == self.budget:
                assert balance.available == self.available(name)
                assert balance.available >= 0
        # The accounting equation: the wallet (asset) holds exactly what customers and the provider are owed.
        owed = [
            p for name, p in self.posted.items() if name != self.cash and name not in self.budget_accounts
        ]
        assert self.posted[self.cash] == sum(owed)
        assert self.posted[self.cash] == self.chain.balance_nano_usd
        trial = self.run(self.ledger.trial_balance())
        assert trial.debits_by_unit == trial.credits_by_unit, trial
        for hold in self.holds:
            stored = self.run(self.ledger.get_hold(hold.id))
            assert stored.state is hold.state, (stored, hold)
            if hold.state is HoldState.CAPTURED:
                assert stored.captured_amount == hold.captured
        for group in self.groups:
            stored_group: HoldGroup = self.run(self.ledger.get_hold_group(group.id))
            assert stored_group.state is group.state, (stored_group, group)
            assert [h.id for h in stored_group.holds] == [h.id for h in group.holds]
            if group.state is HoldState.EXPIRED:
                self.count("group_expired")


def _run_machine(url: str) -> None:
    runner = LoopThread()
    tally: Counter[str] = Counter()
    LedgerMachine.url, LedgerMachine.runner, LedgerMachine.tally = url, runner, tally
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=20,
                stateful_step_count=24,
                deadline=None,
                # A fixed seed: the same examples on every run, so a failure in CI reproduces locally.
                derandomize=True,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        LedgerMachine.url, LedgerMachine.runner, LedgerMachine.tally = "", None, None
        runner.close()
    planted = {f"plant:{kind.value}" for kind in PLANTS_ALWAYS + PLANTS_ON_A_MOVEMENT}
    # Which rules a derandomized run reaches depends on the seed, and Hypothesis derives that seed from this
    # module's source: requiring rare outcomes (a group expiring, resolved) would fail on unrelated edits.
    # Those have deterministic tests in test_hold_groups.py; here the machine must at least place groups.
    missing = ({"reconcile", "hold_group"} | planted) - set(tally)
    assert not missing, f"the examples never ran {sorted(missing)}: {tally}"


def test_ledger_state_machine(database_url: str) -> None:
    _run_machine(database_url)


def test_errors_have_stable_codes() -> None:
    codes = {cls.code for cls in LedgerError.__subclasses__()}
    assert len(codes) == len(LedgerError.__subclasses__())
