"""Inference holds of a dead serving instance are released; those of a live one never are.

Method: real migrations on SQLite and PostgreSQL, instances on an injected clock, holds taken through
`Billing.open` (which names the instance). A silent instance past the staleness bound, a previous incarnation
under the same name, and a cleanly stopped one lose their pending holds to the sweep, with a usage event
each; a live instance on another name keeps its hold; sweeping again (or twice at once) releases nothing
more; an instance that was taken for dead registers again under a new id on its next beat, without
ending anyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import AccountType, HoldLeg, Ledger, Posting, chart, check_ledger, create_ledger_engine, migrate
from proxy.chart_accounts import ChartAccounts
from proxy.db.migrate import migrate_proxy
from proxy.governance.models import Budget, BudgetMode, ScopeKind
from proxy.governance.periods import Period
from proxy.request_ids import new_request_id
from proxy.serving.billing import HOLD_CODE, Billing, BillingSession
from proxy.serving.instances import INSTANCE_STALE_S, ServingInstance, release_orphaned_holds
from proxy.serving.usage_log import UsageLog

PAYER = chart.credit_wallet("0x" + "11" * 20)
HOLD_NANO_USD = 1_000
STALE_MS = int(INSTANCE_STALE_S * 1000)


@dataclass
class World:
    engine: AsyncEngine
    ledger: Ledger
    accounts: ChartAccounts
    usage_log: UsageLog
    now_unix_ms: list[int]

    def instance(self, name: str) -> ServingInstance:
        return ServingInstance(self.engine, name=name, clock_unix_ms=lambda: self.now_unix_ms[0])

    async def hold_for(self, instance: ServingInstance) -> BillingSession:
        billing = Billing(
            ledger=self.ledger,
            accounts=self.accounts,
            usage_log=self.usage_log,
            catalog_version="test",
            hold_timeout_s=900,
            instance_id=lambda: instance.id,
        )
        return await billing.open(
            request_id=new_request_id(),
            payer_account=PAYER,
            api_key_id=None,
            amount_nano_usd=HOLD_NANO_USD,
            first_provider="openai",
            strategy=None,
            streamed=False,
        )

    async def sweep(self, instance: ServingInstance) -> list[int]:
        released = await release_orphaned_holds(
            ledger=self.ledger,
            instance=instance,
            usage_log=self.usage_log,
            hold_code=HOLD_CODE,
            catalog_version="test",
        )
        return [hold.id for hold in released]

    async def state(self, session: BillingSession) -> str:
        return (await self.ledger.get_hold(session.hold.id)).state.value


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    engine = create_ledger_engine(database_url)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        ledger = Ledger(engine)
        accounts = ChartAccounts(ledger)
        await accounts.ensure([PAYER, chart.EQUITY_EXTERNAL])
        await ledger.post(
            idempotency_key="deposit",
            code="deposit",
            postings=[
                Posting(account=chart.EQUITY_EXTERNAL, amount=10 * HOLD_NANO_USD),
                Posting(account=PAYER, amount=-10 * HOLD_NANO_USD),
            ],
        )
        yield World(engine, ledger, accounts, UsageLog(engine), [1_000_000_000])
    finally:
        await engine.dispose()


async def _assert_released_once(world: World, session: BillingSession) -> None:
    assert await world.state(session) == "voided"
    request_id = str(session.hold.metadata["request_id"])
    [event] = await world.usage_log.for_request(request_id)
    assert (event.outcome, event.cost_nano_usd, event.quote_nano_usd) == ("instance_lost", 0, HOLD_NANO_USD)
    assert event.payer_account == PAYER
    assert event.hold_id == session.hold.id


async def test_a_silent_instance_loses_its_holds_a_live_one_keeps_them(world: World) -> None:
    crashed, live, sweeper = world.instance("a:8000"), world.instance("b:8000"), world.instance("c:8000")
    for instance in (crashed, live, sweeper):
        await instance.register()
    crashed_session, live_session = await world.hold_for(crashed), await world.hold_for(live)

    world.now_unix_ms[0] += STALE_MS - 1
    assert await world.sweep(sweeper) == []  # Not yet silent for the whole bound: maybe only slow.
    world.now_unix_ms[0] += 2
    await live.heartbeat()
    await sweeper.heartbeat()
    assert await world.sweep(sweeper) == [crashed_session.hold.id]

    await _assert_released_once(world, crashed_session)
    assert await world.state(live_session) == "pending"
    assert await world.sweep(sweeper) == []
    balance = await world.ledger.balance(PAYER)
    assert balance.pending == HOLD_NANO_USD
    assert balance.available == 9 * HOLD_NANO_USD
    assert await check_ledger(world.engine) == []

    # The "crashed" one was only slow: its next beat finds its row ended and registers anew.
    old_id = crashed.id
    await crashed.heartbeat()
    assert crashed.id != old_id
    assert (await world.hold_for(crashed)).hold.metadata["instance_id"] == crashed.id


async def test_a_previous_incarnation_and_a_stopped_instance_lose_their_holds_at_once(world: World) -> None:
    before_crash, other = world.instance("a:8000"), world.instance("b:8000")
    stopping = world.instance("d:8000")
    for instance in (before_crash, other, stopping):
        await instance.register()
    crashed_session = await world.hold_for(before_crash)
    other_session = await world.hold_for(other)
    stopped_session = await world.hold_for(stopping)
    await stopping.end()

    restarted, second_sweeper = world.instance("a:8000"), world.instance("e:8000")
    await restarted.register()
    await second_sweeper.register()
    # Two processes sweeping at once: each hold is released by exactly one of them.
    swept = await asyncio.gather(world.sweep(restarted), world.sweep(second_sweeper))
    assert sorted(swept[0] + swept[1]) == sorted([crashed_session.hold.id, stopped_session.hold.id])

    await _assert_released_once(world, crashed_session)
    await _assert_released_once(world, stopped_session)
    assert await world.state(other_session) == "pending"
    assert (await world.ledger.balance(PAYER)).pending == HOLD_NANO_USD
    assert await check_ledger(world.engine) == []

    # Were the replaced one alive after all (two processes configured under one name), it registers again
    # without ending the newer one: the two must not keep ending each other.
    replaced_id, restarted_id = before_crash.id, restarted.id
    await before_crash.heartbeat()
    await restarted.heartbeat()
    assert before_crash.id != replaced_id
    assert restarted.id == restarted_id


async def test_an_org_requests_hold_group_is_released_as_one(world: World) -> None:
    """An org key's request holds on a budget and on its payer as one group: a dead instance's group is
    voided whole (budget released too), with one usage event naming the payer."""
    crashed, sweeper = world.instance("a:8000"), world.instance("c:8000")
    for instance in (crashed, sweeper):
        await instance.register()
    budget, spent = "budget:1:total", "budget_spent:1:total"
    for name in (budget, spent):
        await world.ledger.ensure_account(name, type=AccountType.LIABILITY, unit="budget_nano_usd")
    await world.ledger.ensure_account("budget_limit:1", type=AccountType.EQUITY, unit="budget_nano_usd")
    await world.ledger.post(
        idempotency_key="fund",
        code="budget_open",
        postings=[
            Posting(account="budget_limit:1", amount=HOLD_NANO_USD),
            Posting(account=budget, amount=-HOLD_NANO_USD),
        ],
    )
    billing = Billing(
        ledger=world.ledger,
        accounts=world.accounts,
        usage_log=world.usage_log,
        catalog_version="test",
        hold_timeout_s=900,
        instance_id=lambda: crashed.id,
    )
    session = await billing.open(
        request_id=new_request_id(),
        payer_account=PAYER,
        api_key_id=None,
        amount_nano_usd=HOLD_NANO_USD,
        first_provider="openai",
        strategy=None,
        streamed=False,
        budget_legs=[HoldLeg(debit_account=budget, credit_account=spent, amount=HOLD_NANO_USD)],
        budgets=[_budget()],
    )
    await crashed.end()
    assert await world.sweep(sweeper) == [session.hold.id]
    await _assert_released_once(world, session)
    assert (await world.ledger.balance(budget)).available == HOLD_NANO_USD
    assert await world.ledger.open_holds() == []
    assert await world.sweep(sweeper) == []
    assert await check_ledger(world.engine) == []


def _budget() -> Budget:
    return Budget(
        id=1,
        org_id=1,
        scope_kind=ScopeKind.UNIT,
        scope_id=1,
        amount_nano_usd=HOLD_NANO_USD,
        period=Period.TOTAL,
        mode=BudgetMode.HARD,
        alert_at_bp=(),
        created_at=0,
    )
