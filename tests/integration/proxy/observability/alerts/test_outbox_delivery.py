"""The alert outbox and its webhook delivery, on SQLite and PostgreSQL, to a real local receiver.

Goal: an alert raised once per (kind, dedup_key) is delivered to every endpoint, signed by the Standard
Webhooks scheme (the receiver verifies with the official package) under the alert's id; a failing receiver
is retried after exponential back-off until it answers, then the alert is delivered once; a receiver that
never recovers leaves the alert failed but in the history; alerts left undelivered by a dead process,
including one whose request was in flight, are delivered by the next one with the same webhook-id.

Method: the outbox and deliverer on a migrated database; scheduling on a FakeClock that only the test
moves (the signature timestamp is real time, as the receiver checks it); passes are run by the test.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.observability.alerts import AlertDeliverer, Alerts, DeliveryPolicy, WebhookEndpoint
from tests.fixtures.clock import FakeClock
from tests.fixtures.webhook_receiver import WebhookReceiver, new_webhook_secret, webhook_receiver
from tests.integration.proxy.chain.watcher.conftest import migrated_engine

SECRET = new_webhook_secret()
POLICY = DeliveryPolicy(
    attempts_max=4, retry_base_s=10.0, retry_max_s=100.0, timeout_s=5.0, lease_s=35.0, per_pass_max=50
)
# A fixed unix time: scheduling never reads the wall clock.
START_S = 1_800_000_000.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(database_url) as migrated:
        yield migrated


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _deliverer(
    engine: AsyncEngine, session: aiohttp.ClientSession, receiver: WebhookReceiver, clock: FakeClock
) -> AlertDeliverer:
    endpoint = WebhookEndpoint(name="ops", url=receiver.url, secret=SECRET)
    return AlertDeliverer(
        engine, session, endpoints={"ops": endpoint}, policy=POLICY, clock=clock, rng=random.Random(12)
    )


async def test_an_alert_is_delivered_once_signed_under_its_own_id(
    engine: AsyncEngine, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(START_S)
    alerts = Alerts(engine, endpoints=["ops"], clock=clock)
    async with webhook_receiver(SECRET) as receiver:
        deliverer = _deliverer(engine, session, receiver, clock)
        raised = await alerts.raise_alert(
            "budget_threshold", "budget-7:2026-12:80", "budget:7", {"percent": 80}
        )
        assert raised.created
        assert await deliverer.deliver_due() == 1
        assert await deliverer.deliver_due() == 0
    assert receiver.refused_signatures == 0
    assert [item.webhook_id for item in receiver.delivered] == [raised.id]
    body = receiver.delivered[0].body
    assert body["type"] == "alert.budget_threshold"
    assert body["data"] == {
        "id": raised.id,
        "kind": "budget_threshold",
        "subject": "budget:7",
        "created_at": int(START_S),
        "payload": {"percent": 80},
    }
    record = await alerts.get(raised.id)
    assert record is not None
    assert (record.delivery.state, record.delivery.attempts, record.delivery.last_error) == (
        "delivered",
        1,
        None,
    )


async def test_a_receiver_with_another_secret_refuses_the_signature(
    engine: AsyncEngine, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(START_S)
    alerts = Alerts(engine, endpoints=["ops"], clock=clock)
    async with webhook_receiver(new_webhook_secret(seed=99)) as receiver:
        raised = await alerts.raise_alert("breaker_open", "d:1", "deployment:d", {})
        assert await _deliverer(engine, session, receiver, clock).deliver_due() == 1
    assert (receiver.refused_signatures, receiver.received) == (1, [])
    record = await alerts.get(raised.id)
    assert record is not None
    assert (record.delivery.state, record.delivery.last_error) == ("pending", "HTTP 400")


async def test_failing_twice_then_answering_is_retried_with_back_off_and_delivered_once(
    engine: AsyncEngine, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(START_S)
    alerts = Alerts(engine, endpoints=["ops"], clock=clock)
    async with webhook_receiver(SECRET, script=[500, 503]) as receiver:
        deliverer = _deliverer(engine, session, receiver, clock)
        raised = await alerts.raise_alert(
            "settlement_failed", "x402:1", "settlement:1", {"reason": "reverted"}
        )
        assert await deliverer.deliver_due() == 1
        # After one failure the wait is 5..10 s (half of the 10 s ceiling is fixed): not due before 5 s.
        clock.advance(4.9)
        assert await deliverer.deliver_due() == 0
        clock.advance(5.1)
        assert await deliverer.deliver_due() == 1
        record = await alerts.get(raised.id)
        assert record is not None
        assert (record.delivery.state, record.delivery.attempts, record.delivery.last_error) == (
            "pending",
            2,
            "HTTP 503",
        )
        # After two failures: 10..20 s.
        clock.advance(9.9)
        assert await deliverer.deliver_due() == 0
        clock.advance(10.1)
        assert await deliverer.deliver_due() == 1
        clock.advance(1_000)
        assert await deliverer.deliver_due() == 0
    assert [item.status for item in receiver.received] == [500, 503, 200]
    assert {item.webhook_id for item in receiver.received} == {raised.id}
    assert len(receiver.delivered) == 1
    record = await alerts.get(raised.id)
    assert record is not None
    assert (record.delivery.state, record.delivery.attempts) == ("delivered", 3)


async def test_a_receiver_that_never_recovers_leaves_the_alert_failed_in_the_history(
    engine: AsyncEngine, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(START_S)
    alerts = Alerts(engine, endpoints=["ops"], clock=clock)
    async with webhook_receiver(SECRET, script=[500] * POLICY.attempts_max) as receiver:
        deliverer = _deliverer(engine, session, receiver, clock)
        raised = await alerts.raise_alert("reconciliation_break", "run:1", "reconcile_run:1", {})
        for _ in range(POLICY.attempts_max):
            assert await deliverer.deliver_due() == 1
            clock.advance(POLICY.retry_max_s)
        assert await deliverer.deliver_due() == 0
    assert len(receiver.received) == POLICY.attempts_max
    page = await alerts.history()
    assert [record.id for record in page.data] == [raised.id]
    delivery = page.data[0].delivery
    assert (delivery.state, delivery.attempts, delivery.last_error) == (
        "failed",
        POLICY.attempts_max,
        "HTTP 500",
    )


async def test_raising_again_changes_nothing_even_concurrently(engine: AsyncEngine) -> None:
    alerts = Alerts(engine, endpoints=["ops", "pager"], clock=FakeClock(START_S))
    raised = await asyncio.gather(
        *(alerts.raise_alert("spend_anomaly", "key:1:1800000000", "key:1", {"n": n}) for n in range(10))
    )
    assert sum(item.created for item in raised) == 1
    assert len({item.id for item in raised}) == 1
    page = await alerts.history()
    assert len(page.data) == 1
    assert [endpoint.endpoint for endpoint in page.data[0].delivery.endpoints] == ["ops", "pager"]
    assert (await alerts.raise_alert("breaker_open", "key:1:1800000000", "x", {})).created


async def test_history_pages_newest_first_and_filters_by_kind(engine: AsyncEngine) -> None:
    clock = FakeClock(START_S)
    alerts = Alerts(engine, endpoints=[], clock=clock)
    ids = []
    for n in range(5):
        ids.append(
            (await alerts.raise_alert("breaker_open" if n % 2 else "spend_anomaly", str(n), "s", {})).id
        )
        clock.advance(1)
    first = await alerts.history(limit=2)
    assert [record.id for record in first.data] == [ids[4], ids[3]]
    assert first.has_more
    rest = await alerts.history(limit=10, after=ids[3])
    assert [record.id for record in rest.data] == [ids[2], ids[1], ids[0]]
    assert not rest.has_more
    breakers = await alerts.history(kind="breaker_open")
    assert [record.id for record in breakers.data] == [ids[3], ids[1]]
    assert all(record.delivery.state == "no_endpoints" for record in rest.data)


async def test_a_new_process_delivers_what_a_killed_one_left_including_the_request_in_flight(
    database_url: str, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(START_S)
    async with webhook_receiver(SECRET) as receiver, migrated_engine(database_url) as first_engine:
        receiver.hang = asyncio.Event()
        first = Alerts(first_engine, endpoints=["ops"], clock=clock)
        in_flight = await first.raise_alert("breaker_open", "d:1", "deployment:d", {})
        # The first process claims the delivery and sends it; it dies before the answer (no bookkeeping).
        sending = asyncio.create_task(_deliverer(first_engine, session, receiver, clock).deliver_due())
        await receiver.until(lambda: receiver.arrived == 1, "the first request")
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        never_sent = [
            (await first.raise_alert("settlement_failed", f"x402:{n}", "s", {})).id for n in range(3)
        ]
        receiver.hang.set()
        receiver.hang = None

    async with webhook_receiver(SECRET) as receiver, migrated_engine(database_url) as second_engine:
        second = _deliverer(second_engine, session, receiver, clock)
        assert await second.deliver_due() == 3
        # The claim of the request in flight holds until its lease passes; then it is sent again.
        clock.advance(POLICY.lease_s)
        assert await second.deliver_due() == 1
        history = await Alerts(second_engine, endpoints=["ops"], clock=clock).history()
    assert sorted(item.webhook_id for item in receiver.delivered) == sorted([*never_sent, in_flight.id])
    states = {record.id: (record.delivery.state, record.delivery.attempts) for record in history.data}
    assert states[in_flight.id] == ("delivered", 2)
    assert {states[alert_id] for alert_id in never_sent} == {("delivered", 1)}
