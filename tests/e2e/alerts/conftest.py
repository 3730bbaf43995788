"""`alerting_router`: the running router with an admin token, alerts delivered to a local webhook receiver,
and the clocks alerts and usage events run on injected (a FakeClock in unix seconds the test moves).

Detectors run once at start-up and then hourly in the background; tests evaluate them when they choose.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from eth_account.signers.local import LocalAccount

from proxy.api.app_keys import ALERT_DETECTORS, ALERTS_CLOCK
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.observability.alerts import RaisedAlert, evaluate_all
from proxy.routing.health import Clock
from proxy.settings import AlertEndpointSettings, AlertsSettings, Settings
from tests.fixtures.app import RunningRouter, router_settings, start_router
from tests.fixtures.clock import FakeClock
from tests.fixtures.webhook_receiver import WebhookReceiver

ADMIN_TOKEN = "admin-test-key-0123456789"
DETECTOR_TIMEOUT_S = 30.0


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def alerts_settings(receiver: WebhookReceiver, **overrides: Any) -> AlertsSettings:
    endpoint = AlertEndpointSettings(url=receiver.url, secret=receiver.secret, name="ops")
    return AlertsSettings(endpoints=(endpoint,), evaluate_interval_s=3_600, **overrides)


async def evaluate(router: RunningRouter) -> list[RaisedAlert]:
    detectors = router.app[ALERT_DETECTORS]
    return await evaluate_all(detectors, timeout_s=DETECTOR_TIMEOUT_S)


@contextlib.asynccontextmanager
async def alerting_router(
    aiohttp_client: Any,
    *,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
    alerts: AlertsSettings,
    clock: FakeClock,
    health_clock: Clock | None = None,
    simulator_base_url: str | None = None,
    adjust: Callable[[Settings], Settings] = lambda settings: settings,
) -> AsyncIterator[RunningRouter]:
    settings = adjust(
        router_settings(
            anvil=anvil,
            tokens=tokens,
            settlement_key=anvil_accounts[0].key.hex(),
            simulator_base_url=simulator_base_url or simulator.base_url,
            database_url=database_url,
            admin_token=ADMIN_TOKEN,
            alerts=alerts,
        )
    )

    def prepare(app: web.Application) -> None:
        alerts_clock: Clock = clock
        app[ALERTS_CLOCK] = alerts_clock

    def usage_now() -> datetime:
        return datetime.fromtimestamp(clock(), UTC)

    async with start_router(
        aiohttp_client,
        settings,
        anvil=anvil,
        tokens=tokens,
        anvil_accounts=anvil_accounts,
        simulator=simulator,
        health_clock=health_clock,
        usage_clock=usage_now,
        prepare=prepare,
    ) as running:
        yield running
