"""An alert whose webhook request is in flight when the process is killed (SIGKILL) is delivered by the
next process, under the same webhook-id (issue 12 item 4: at-least-once, never lost).

Method: MegaRouter runs as a real OS process with one alert endpoint, a local receiver that verifies every
signature with `standardwebhooks` and holds the first request open. An alert is raised into the shared
database (as any replica would); once its request reaches the receiver, the process is killed with SIGKILL.
A new process on the same database sends it again once the claim's lease has passed; the history (GET
/v1/alerts, admin token) shows it delivered after two attempts.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from ledger import create_ledger_engine
from proxy.observability.alerts import Alerts
from proxy.settings import AlertEndpointSettings, AlertsSettings
from tests.e2e.server_process import run_server_process
from tests.fixtures.app import RunningRouter
from tests.fixtures.webhook_receiver import new_webhook_secret, webhook_receiver

ADMIN_TOKEN = "crash-test-admin-key"
EXIT_TIMEOUT_S = 10.0


@pytest.mark.slow
async def test_a_delivery_in_flight_at_sigkill_is_sent_again_under_the_same_id(
    router: RunningRouter, tmp_path: Path
) -> None:
    async with webhook_receiver(new_webhook_secret()) as receiver:
        receiver.hang = asyncio.Event()
        endpoint = AlertEndpointSettings(url=receiver.url, secret=receiver.secret, name="ops")
        alerts_settings = AlertsSettings(
            endpoints=(endpoint,),
            delivery_timeout_s=5.0,
            delivery_lease_s=6.0,
            delivery_poll_interval_s=0.2,
            evaluate_interval_s=3_600,
        )
        settings = router.settings.model_copy(
            update={"alerts": alerts_settings, "admin_token": SecretStr(ADMIN_TOKEN)}
        )
        engine = create_ledger_engine(settings.database_url)
        try:
            async with run_server_process(settings, tmp_path, log_name="first.log") as first:
                outbox = Alerts(engine, endpoints=["ops"], clock=time.time)
                raised = await outbox.raise_alert("breaker_open", "crash:1", "deployment:x", {"n": 1})
                await receiver.until(lambda: receiver.arrived == 1, "the request in flight")
                first.process.kill()
                assert await first.wait_exit(EXIT_TIMEOUT_S) == -9
            receiver.hang.set()
            receiver.hang = None

            async with run_server_process(settings, tmp_path, log_name="second.log") as second:
                await receiver.until(lambda: len(receiver.received) == 2, "the second copy")
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(
                        f"{second.base_url}/v1/alerts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                    ) as response,
                ):
                    assert response.status == 200
                    history = await response.json()
        finally:
            await engine.dispose()

    assert receiver.refused_signatures == 0
    assert [item.webhook_id for item in receiver.received] == [raised.id, raised.id]
    (alert,) = history["data"]
    assert alert["id"] == raised.id
    assert (alert["delivery"]["state"], alert["delivery"]["attempts"]) == ("delivered", 2)
