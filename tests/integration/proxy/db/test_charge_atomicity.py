"""A hold's resolution and the usage event that explains it commit together, or neither does.

Goal: issue 8 item 3: the capture (with the usage-overage expense) and its usage event were written in
separate transactions, so a crash between them kept a charge with no explanation; likewise a void and an
orphaned hold's release. Method: real migrations on SQLite and PostgreSQL; a UsageLog whose insert fails
stands in for a crash at that point. After it, the hold is still pending, nothing is booked (no capture,
no overage, no event), and resolving again succeeds once; a retried resolution after the commit (a replay
of its idempotency key, as after a crash before the answer) writes no second event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger import HoldState, Ledger, Posting, chart, check_ledger, create_ledger_engine, migrate
from proxy.catalog import CatalogModel, load_catalog
from proxy.chart_accounts import ChartAccounts
from proxy.db.migrate import migrate_proxy
from proxy.providers.base import TokenUsage
from proxy.request_ids import new_request_id
from proxy.serving.billing import Billing, BillingSession
from proxy.serving.instances import ServingInstance, release_orphaned_holds
from proxy.serving.usage_log import UsageEvent, UsageLog

PAYER = chart.credit_wallet("0x" + "22" * 20)
HOLD_NANO_USD = 100_000
MODEL_ID = "openai/gpt-4o-mini"


class InsertFails(Exception):
    """The injected failure: the process dies (or the database refuses) at the usage event's insert."""


class FailingUsageLog(UsageLog):
    async def insert(self, connection: AsyncConnection, event: UsageEvent) -> None:
        raise InsertFails(event.request_id)


@dataclass
class World:
    engine: AsyncEngine
    ledger: Ledger
    accounts: ChartAccounts
    usage_log: UsageLog
    model: CatalogModel

    def billing(self, usage_log: UsageLog, instance_id: str = "inst_test") -> Billing:
        return Billing(
            ledger=self.ledger,
            accounts=self.accounts,
            usage_log=usage_log,
            catalog_version="test",
            hold_timeout_s=900,
            instance_id=lambda: instance_id,
        )

    async def open(self, usage_log: UsageLog, instance_id: str = "inst_test") -> BillingSession:
        return await self.billing(usage_log, instance_id).open(
            request_id=new_request_id(),
            payer_account=PAYER,
            api_key_id=None,
            amount_nano_usd=HOLD_NANO_USD,
            first_provider=self.model.provider,
            strategy=None,
            streamed=False,
        )

    def again(self, session: BillingSession, usage_log: UsageLog) -> BillingSession:
        """The same request's hold resolved by a fresh session: a retry after the failure or the crash."""
        return BillingSession(
            billing=self.billing(usage_log),
            hold=session.hold,
            request_id=str(session.hold.metadata["request_id"]),
            payer_account=PAYER,
            api_key_id=None,
            strategy=None,
            streamed=False,
        )

    async def events(self, session: BillingSession) -> list[UsageEvent]:
        return await self.usage_log.for_request(str(session.hold.metadata["request_id"]))

    async def balance_posted(self, account: str) -> int:
        if not await self.billing(self.usage_log).has_account(account):
            return 0
        return (await self.ledger.balance(account)).posted


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
        model = load_catalog().get(MODEL_ID)
        yield World(engine, ledger, accounts, UsageLog(engine), model)
        assert await check_ledger(engine) == []
    finally:
        await engine.dispose()


# Far more output than the hold covers: the caller pays the quote and the rest is the operator's overage.
OVER_QUOTE = TokenUsage(input_tokens=10, output_tokens=10_000_000)
WITHIN_QUOTE = TokenUsage(input_tokens=10, output_tokens=20)


@pytest.mark.parametrize("usage", [WITHIN_QUOTE, OVER_QUOTE], ids=["within_quote", "over_quote"])
async def test_a_failed_usage_event_leaves_the_capture_undone(world: World, usage: TokenUsage) -> None:
    session = await world.open(FailingUsageLog(world.engine))
    with pytest.raises(InsertFails):
        await session.charge(world.model, usage, attempts=[], outcome="completed")

    assert (await world.ledger.get_hold(session.hold.id)).state is HoldState.PENDING
    assert await world.events(session) == []
    payable = chart.provider_payable(world.model.provider)
    assert await world.balance_posted(payable) == 0
    assert await world.balance_posted(chart.usage_overage_expense(world.model.provider)) == 0

    # Resolving again (a retry, or the sweeper's expiry) is still possible, and books everything once.
    cost_nano_usd = await world.again(session, world.usage_log).charge(
        world.model, usage, attempts=[], outcome="completed"
    )
    hold = await world.ledger.get_hold(session.hold.id)
    assert (hold.state, hold.captured_amount) == (HoldState.CAPTURED, cost_nano_usd)
    [event] = await world.events(session)
    assert event.cost_nano_usd == cost_nano_usd
    assert event.overage_nano_usd == (
        0 if usage is WITHIN_QUOTE else await world.balance_posted(chart.usage_overage_expense("openai"))
    )
    assert (event.overage_nano_usd > 0) is (usage is OVER_QUOTE)


async def test_a_failed_usage_event_leaves_the_void_undone(world: World) -> None:
    session = await world.open(FailingUsageLog(world.engine))
    with pytest.raises(InsertFails):
        await session.release(attempts=[], outcome="upstream_failed")
    assert (await world.ledger.get_hold(session.hold.id)).state is HoldState.PENDING
    assert await world.events(session) == []

    await world.again(session, world.usage_log).release(attempts=[], outcome="upstream_failed")
    assert (await world.ledger.get_hold(session.hold.id)).state is HoldState.VOIDED
    [event] = await world.events(session)
    assert (event.outcome, event.cost_nano_usd) == ("upstream_failed", 0)


@pytest.mark.parametrize("usage", [WITHIN_QUOTE, OVER_QUOTE], ids=["within_quote", "over_quote"])
async def test_a_replayed_capture_writes_no_second_event(world: World, usage: TokenUsage) -> None:
    session = await world.open(world.usage_log)
    first = await session.charge(world.model, usage, attempts=[], outcome="completed")
    overage_before = await world.balance_posted(chart.usage_overage_expense(world.model.provider))
    # The process crashed after the commit, before answering: the retry replays the capture's key.
    replayed = await world.again(session, world.usage_log).charge(
        world.model, usage, attempts=[], outcome="completed"
    )
    assert replayed == first
    assert len(await world.events(session)) == 1
    assert await world.balance_posted(chart.usage_overage_expense(world.model.provider)) == overage_before


async def test_a_replayed_void_writes_no_second_event(world: World) -> None:
    session = await world.open(world.usage_log)
    await session.release(attempts=[], outcome="aborted")
    await world.again(session, world.usage_log).release(attempts=[], outcome="aborted")
    assert len(await world.events(session)) == 1


async def test_a_failed_usage_event_leaves_an_orphaned_hold_pending(world: World) -> None:
    dead, sweeper = ServingInstance(world.engine, name="dead:1"), ServingInstance(world.engine, name="s:1")
    await dead.register()
    await sweeper.register()
    session = await world.open(world.usage_log, instance_id=dead.id)
    await dead.end()

    with pytest.raises(InsertFails):
        await release_orphaned_holds(
            ledger=world.ledger,
            instance=sweeper,
            usage_log=FailingUsageLog(world.engine),
            hold_code=session.hold.code,
            catalog_version="test",
        )
    assert (await world.ledger.get_hold(session.hold.id)).state is HoldState.PENDING
    assert await world.events(session) == []

    released = await release_orphaned_holds(
        ledger=world.ledger,
        instance=sweeper,
        usage_log=world.usage_log,
        hold_code=session.hold.code,
        catalog_version="test",
    )
    assert [hold.id for hold in released] == [session.hold.id]
    [event] = await world.events(session)
    assert event.outcome == "instance_lost"
