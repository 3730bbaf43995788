"""A process that dies holding a request's credit gives it back at the next start, not 900 s later, and
a start never releases the holds of another live process's requests in flight.

Method: MegaRouter runs as a real OS process with the `after_inference_held` crash point; an agent pays
(x402) for a completion, the process takes the hold and dies with os._exit. Meanwhile another router (in
this test's process, on the same database) has a request in flight: a hold opened through its Billing.
A new process started on the dead one's host and port (so, its next incarnation) must void the dead
process's hold before serving, with an `instance_lost` usage event, and leave the live router's hold alone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount

from ledger import HoldState, Ledger, chart, check_ledger, create_ledger_engine
from proxy.api.app_keys import BILLING, LEDGER
from proxy.faults import CRASH_EXIT_CODE
from proxy.request_ids import new_request_id
from proxy.serving.billing import HOLD_CODE
from proxy.serving.usage_log import UsageLog
from tests.e2e.api.support import topup
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.e2e.server_process import run_server_process
from tests.fixtures.app import RunningRouter

CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 16,
}
LIVE_HOLD_NANO_USD = 5_000


async def _pay_until_crash(base_url: str, payer: LocalAccount) -> int:
    """Pays one completion; the server dies once it holds the credit. Returns the nano-USD paid."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(f"{base_url}/v1/chat/completions", json=CHAT_BODY) as response:
            assert response.status == 402
            offer = await response.json()
        header = encode_b64_json(sign_v2_payment(payer, offer))
        with pytest.raises(aiohttp.ClientError):
            async with session.post(
                f"{base_url}/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
            ) as paid:
                await paid.read()
    return int(offer["accepts"][0]["amount"]) * 1_000


async def _open_live_hold(router: RunningRouter, payer: LocalAccount) -> int:
    """A request of the live router, in flight: its hold is taken and not yet resolved."""
    await topup(router, payer, amount_usd="0.01")
    session = await router.app[BILLING].open(
        request_id=new_request_id(),
        payer_account=chart.credit_wallet(payer.address),
        api_key_id=None,
        amount_nano_usd=LIVE_HOLD_NANO_USD,
        first_provider="openai",
        strategy=None,
        streamed=False,
    )
    return session.hold.id


@pytest.mark.slow
async def test_crashed_process_hold_is_released_at_restart_and_a_live_one_is_not(
    router: RunningRouter, tmp_path: Path, database_url: str
) -> None:
    crashed_payer, live_payer = router.payers[8], router.payers[6]
    live_hold_id = await _open_live_hold(router, live_payer)
    crashing = router.settings.model_copy(update={"fault_injection": frozenset({"after_inference_held"})})
    async with run_server_process(crashing, tmp_path) as server:
        paid_nano_usd = await _pay_until_crash(server.base_url, crashed_payer)
        assert await server.wait_exit() == CRASH_EXIT_CODE
    crashed_account = chart.credit_wallet(crashed_payer.address)
    ledger = router.app[LEDGER]
    [orphan] = [hold for hold in await ledger.open_holds(crashed_account) if hold.code == HOLD_CODE]
    assert (await ledger.balance(crashed_account)).available == paid_nano_usd - orphan.amount

    async with run_server_process(router.settings, tmp_path, port=server.port):
        pass  # Healthy means start-up recovery has run.

    async with contextlib.AsyncExitStack() as cleanup:
        engine = create_ledger_engine(database_url)
        cleanup.push_async_callback(engine.dispose)
        fresh = Ledger(engine)
        assert (await fresh.get_hold(orphan.id)).state is HoldState.VOIDED
        balance = await fresh.balance(crashed_account)
        assert (balance.available, balance.pending) == (paid_nano_usd, 0)
        [event] = await UsageLog(engine).for_request(str(orphan.metadata["request_id"]))
        assert (event.outcome, event.cost_nano_usd, event.hold_id) == ("instance_lost", 0, orphan.id)
        assert (await fresh.get_hold(live_hold_id)).state is HoldState.PENDING
        assert await check_ledger(engine) == []
