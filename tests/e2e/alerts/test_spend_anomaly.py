"""Spend that departs from its own baseline alerts, from real requests (issue 12 item 4).

Goal: a key (and its wallet) whose spend in the current hour is far above its own trailing hours raises one
`spend_anomaly` alert per subject per hour, delivered signed to the webhook; a key spending as it always
did raises none; evaluating again raises nothing new; the next quiet hour raises nothing.

Method: the running router with usage events and alerts on one FakeClock (unix seconds) the test moves
hour by hour; two funded keys make real chat completions (the simulator answers) through three baseline
hours and one burst hour; the detector is evaluated by the test. The floor (min excess) is set from the
catalog price bounds of one request, and the test checks those premises on the recorded usage events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from eth_account.signers.local import LocalAccount

from proxy.api.app_keys import DB_ENGINE
from proxy.db.tables import usage_events
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.settings import SpendAnomalySettings
from tests.e2e.accounts.helpers import bearer
from tests.e2e.alerts.conftest import admin, alerting_router, alerts_settings, evaluate
from tests.e2e.api.support import funded_key
from tests.fixtures.app import DEFAULT_TEST_MODEL, RunningRouter
from tests.fixtures.clock import FakeClock
from tests.fixtures.webhook_receiver import new_webhook_secret, webhook_receiver

HOUR_S = 3_600
START_S = 1_800_000_000 // HOUR_S * HOUR_S + 60
BASELINE_HOURS = 3
# About 250 prompt tokens: one request costs at least ~37,000 nano-USD at gpt-4o-mini's input price, and
# its 16 output tokens at most ~9,600 more, so two requests vary by under 20,000 from hour to hour.
PROMPT = " ".join(["The quick brown fox jumps over the lazy dog."] * 25)
MIN_EXCESS_NANO_USD = 30_000
BODY: dict[str, Any] = {
    "model": DEFAULT_TEST_MODEL,
    "messages": [{"role": "user", "content": PROMPT}],
    "max_tokens": 16,
}


async def _requests(router: RunningRouter, key: str, count: int) -> None:
    for _ in range(count):
        response = await router.client.post("/v1/chat/completions", json=BODY, headers=bearer(key))
        assert response.status == 200, await response.text()


async def _key_id_and_costs(router: RunningRouter, payer: LocalAccount) -> tuple[int, list[int]]:
    async with router.app[DB_ENGINE].connect() as connection:
        rows = (
            await connection.execute(
                sa.select(usage_events.c.api_key_id, usage_events.c.cost_nano_usd).where(
                    usage_events.c.payer_account == f"credit:wallet:{payer.address.lower()}"
                )
            )
        ).all()
    assert rows
    assert len({key_id for key_id, _ in rows}) == 1
    return rows[0][0], [cost for _, cost in rows]


async def test_a_burst_above_the_own_baseline_alerts_once_per_subject_and_steady_spend_does_not(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> None:
    clock = FakeClock(START_S)
    spend = SpendAnomalySettings(
        baseline_hours=BASELINE_HOURS, mad_multiplier=Decimal(3), min_excess_nano_usd=MIN_EXCESS_NANO_USD
    )
    async with (
        webhook_receiver(new_webhook_secret()) as receiver,
        alerting_router(
            aiohttp_client,
            anvil=anvil,
            tokens=tokens,
            anvil_accounts=anvil_accounts,
            simulator=simulator,
            database_url=database_url,
            alerts=alerts_settings(receiver, spend_anomaly=spend),
            clock=clock,
        ) as router,
    ):
        bursty, steady = router.payers[0], router.payers[1]
        bursty_key = await funded_key(router, bursty)
        steady_key = await funded_key(router, steady)
        for hour in range(BASELINE_HOURS):
            await _requests(router, bursty_key, 2)
            await _requests(router, steady_key, 2)
            if hour == BASELINE_HOURS - 1:
                # Two of the three trailing hours spent as much as this one: the median says "usual".
                assert await evaluate(router) == []
            clock.advance(HOUR_S)
        await _requests(router, bursty_key, 14)
        await _requests(router, steady_key, 2)

        raised = await evaluate(router)
        assert len(raised) == 2
        assert all(alert.created for alert in raised)
        assert await evaluate(router) == []  # already raised this hour: not even looked up again

        bursty_key_id, bursty_costs = await _key_id_and_costs(router, bursty)
        _, steady_costs = await _key_id_and_costs(router, steady)
        # The premises the floor was chosen on.
        assert min(bursty_costs + steady_costs) > 30_000
        assert max(steady_costs) - min(steady_costs) < MIN_EXCESS_NANO_USD // 2

        response = await router.client.get("/v1/alerts", params={"kind": "spend_anomaly"}, headers=admin())
        assert response.status == 200
        listed = (await response.json())["data"]
        assert sorted(alert["subject"] for alert in listed) == sorted(
            [f"key:{bursty_key_id}", f"payer:credit:wallet:{bursty.address.lower()}"]
        )
        hour_spend = sum(bursty_costs[-14:])
        for alert in listed:
            payload = alert["payload"]
            assert payload["spend_nano_usd"] == hour_spend
            assert payload["baseline_hourly_nano_usd"] == [sum(bursty_costs[i : i + 2]) for i in (0, 2, 4)]
            assert payload["threshold_nano_usd"] < hour_spend
            burst_hour = datetime.fromtimestamp(START_S // HOUR_S * HOUR_S + BASELINE_HOURS * HOUR_S, UTC)
            assert payload["hour_start"] == burst_hour.isoformat().replace("+00:00", "Z")

        await receiver.until(lambda: len(receiver.delivered) == 2, "two delivered alerts")
        assert {item.webhook_id for item in receiver.delivered} == {alert["id"] for alert in listed}

        clock.advance(HOUR_S)
        await _requests(router, steady_key, 2)
        assert await evaluate(router) == []
