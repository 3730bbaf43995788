"""Model-based test: a Hypothesis state machine drives the ledger with random deposits, withdrawals, holds,
captures, voids, clock moves, sweeps and replays (same body and different body), on SQLite and PostgreSQL.

After every step it checks the books (`check_ledger`: every transaction sums to zero, per unit the totals
balance, cached balances equal the entries and open holds, no credit account below zero, each hold resolved
at most once), compares every balance and hold state with a plain-Python model, and checks that replays add no
rows.

Bridging: the test is sync (Hypothesis drives it); the async ledger runs on a dedicated event loop in a
background thread, so nothing touches pytest-asyncio's session loop and no loop is ever nested. Each example
gets an empty ledger of its own (a new SQLite file, or a new schema in the test's PostgreSQL database), so a
failing example cannot leak into the next one while Hypothesis shrinks.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
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
    HoldState,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    LedgerError,
    check_ledger,
    create_ledger_engine,
    migrate,
)
from tests.fixtures.ledger import FakeClock

T = TypeVar("T")
STEP_TIMEOUT_S = 30.0
CUSTOMERS = 2
UNIT = "nano_usd"
COUNTED_TABLES = ("ledger_transactions", "ledger_entries", "ledger_holds", "ledger_hold_resolutions")


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
    customer: str
    amount: int
    expires_at_unix_ms: int
    state: HoldState = HoldState.PENDING
    captured: int = 0


@dataclass
class Recorded:
    """A successful write, kept to replay with the same or a different body."""

    kind: str
    kwargs: dict[str, Any]
    result: Any


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""
    runner: LoopThread | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.runner is not None
        self.prefix = uuid.uuid4().hex[:10]
        self.clock = FakeClock()
        self.engine: AsyncEngine = self.run(fresh_engine(self.url, self.prefix))
        self.ledger = Ledger(self.engine, clock=self.clock)
        self.external = f"equity:external:{self.prefix}"
        self.payable = f"provider_payable:{self.prefix}"
        self.customers = [f"credit:account:{self.prefix}-{i}" for i in range(CUSTOMERS)]
        self.posted = dict.fromkeys([self.external, self.payable, *self.customers], 0)
        self.holds: list[ModelHold] = []
        self.recorded: list[Recorded] = []
        self.counter = 0
        self.run(self._open())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self.runner is not None
        return self.runner.run(coroutine)

    async def _open(self) -> None:
        await migrate(self.engine)
        await self.ledger.ensure_account(self.external, type=AccountType.EQUITY, unit=UNIT)
        await self.ledger.ensure_account(self.payable, type=AccountType.LIABILITY, unit=UNIT)
        for name in self.customers:
            flags = AccountFlags.MUST_NOT_GO_NEGATIVE
            await self.ledger.ensure_account(name, type=AccountType.LIABILITY, unit=UNIT, flags=flags)

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

    async def row_counts(self) -> tuple[int, ...]:
        async with self.engine.connect() as conn:
            return tuple(
                [
                    (await conn.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one()
                    for t in COUNTED_TABLES
                ]
            )

    # ----------------------------------------------------------------------------------------- rules

    @rule(customer=st.integers(0, CUSTOMERS - 1), amount=st.integers(1, 1_000))
    def deposit(self, customer: int, amount: int) -> None:
        name = self.customers[customer]
        kwargs: dict[str, Any] = {
            "idempotency_key": self.key("deposit"),
            "code": "deposit",
            "postings": [(self.external, amount), (name, -amount)],
            "external_ref": f"{self.prefix}:chain:{self.counter}",
        }
        result = self.run(self.ledger.post(**kwargs))
        self.posted[self.external] -= amount
        self.posted[name] += amount
        self.recorded.append(Recorded("post", kwargs, result))

    @rule(customer=st.integers(0, CUSTOMERS - 1), amount=st.integers(1, 1_500))
    def withdraw(self, customer: int, amount: int) -> None:
        name = self.customers[customer]
        kwargs: dict[str, Any] = {
            "idempotency_key": self.key("withdraw"),
            "code": "withdraw",
            "postings": [(name, amount), (self.external, -amount)],
        }
        enough = amount <= self.available(name)
        try:
            result = self.run(self.ledger.post(**kwargs))
        except InsufficientFunds:
            assert not enough
            return
        assert enough
        self.posted[self.external] += amount
        self.posted[name] -= amount
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
        self.holds.append(ModelHold(result.id, name, amount, self.clock.now_unix_ms + timeout_s * 1000))
        self.recorded.append(Recorded("hold", kwargs, result))

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), fraction=st.integers(0, 120))
    def capture(self, data: st.DataObject, fraction: int) -> None:
        hold = data.draw(st.sampled_from(self.holds))
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

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from(self.holds))
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

    async def _call(self, kind: str, kwargs: dict[str, Any]) -> Any:
        if kind == "post":
            return await self.ledger.post(**kwargs)
        if kind == "hold":
            return await self.ledger.hold(**kwargs)
        if kind == "capture":
            return await self.ledger.capture(**kwargs)
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
            if name in self.customers:
                assert balance.available == self.available(name)
                assert balance.available >= 0
        assert sum(self.posted.values()) == 0
        for hold in self.holds:
            stored = self.run(self.ledger.get_hold(hold.id))
            assert stored.state is hold.state, (stored, hold)
            if hold.state is HoldState.CAPTURED:
                assert stored.captured_amount == hold.captured


def _run_machine(url: str) -> None:
    runner = LoopThread()
    LedgerMachine.url, LedgerMachine.runner = url, runner
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=12,
                stateful_step_count=14,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        LedgerMachine.url, LedgerMachine.runner = "", None
        runner.close()


def test_ledger_state_machine(database_url: str) -> None:
    _run_machine(database_url)


def test_errors_have_stable_codes() -> None:
    codes = {cls.code for cls in LedgerError.__subclasses__()}
    assert len(codes) == len(LedgerError.__subclasses__())
