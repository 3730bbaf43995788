"""`kill -9` between serving an x402 `upto` request and settling it: after restart it is settled exactly once.

Method: MegaRouter runs as a real OS process with a crash point enabled (proxy/faults.py): after the
request's cost is captured (the amount due written in the same database transaction, nothing signed), or
after the settlement transaction is signed and stored (nothing sent). The process dies with os._exit; a new
process on the same database and chain finishes the intent at start-up; a third start changes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from ledger import Ledger, chart, check_ledger, create_ledger_engine
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.faults import CRASH_EXIT_CODE
from tests.e2e.payments import encode_b64_json
from tests.e2e.server_process import run_server_process
from tests.e2e.upto_support import CHAT_BODY, NETWORK, intent_rows
from tests.fixtures.app import router_settings
from tests.fixtures.chain import token_balance_atomic
from x402.models import PaymentRequirements, to_wire
from x402.upto_client import sign_upto_payment


async def _pay_until_crash(base_url: str, payer: LocalAccount, asset: str) -> None:
    """Pays one request with `upto`; the server dies mid-way, so the client sees the connection drop."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(f"{base_url}/v1/chat/completions", json=CHAT_BODY) as response:
            assert response.status == 402
            offer = await response.json()
        [entry] = [e for e in offer["accepts"] if e["scheme"] == "upto" and e["asset"] == asset]
        requirements = PaymentRequirements.model_validate(entry)
        payload = sign_upto_payment(payer, requirements, now_unix_s=int(time.time()))
        header = encode_b64_json(to_wire(payload))
        with pytest.raises(aiohttp.ClientError):
            async with session.post(
                f"{base_url}/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
            ) as paid:
                await paid.read()


@pytest.mark.slow
@pytest.mark.parametrize("crash_point", ["after_upto_captured", "after_upto_signed"])
async def test_crash_between_serving_and_settling_is_settled_once(
    crash_point: str,
    tmp_path: Path,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
    chain_w3: AsyncWeb3[Any],
) -> None:
    payer, usdc = anvil_accounts[8], tokens.usdc.address
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key="0x" + anvil_accounts[0].key.hex().removeprefix("0x"),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
    )
    async with contextlib.AsyncExitStack() as cleanup:
        before = await token_balance_atomic(chain_w3, usdc, payer.address)
        async with run_server_process(
            settings.model_copy(update={"fault_injection": frozenset({crash_point})}), tmp_path
        ) as server:
            await _pay_until_crash(server.base_url, payer, usdc)
            assert await server.wait_exit() == CRASH_EXIT_CODE
        # Served and captured, not settled: the chain has not moved yet.
        assert await token_balance_atomic(chain_w3, usdc, payer.address) == before

        for _ in range(2):  # Recovery runs at start; a second start must change nothing.
            async with run_server_process(settings, tmp_path):
                pass

        engine = create_ledger_engine(database_url)
        cleanup.push_async_callback(engine.dispose)
        [intent] = await intent_rows(engine)
        assert (intent["scheme"], intent["status"]) == ("upto", "booked")
        due_atomic = intent["value_atomic"]
        assert 0 < due_atomic < intent["max_atomic"]
        assert await token_balance_atomic(chain_w3, usdc, payer.address) == before - due_atomic
        assert await check_ledger(engine) == []
        ledger = Ledger(engine)
        codes = Counter(tx.code for tx in await ledger.transactions())
        # One promise, one settlement and one gas booking for the one settlement transaction.
        booked = (codes["x402_upto_promise"], codes["x402_upto_settlement"], codes["settlement_gas"])
        assert booked == (1, 1, 1)
        assert (await ledger.balance(chart.in_transit(NETWORK, usdc))).posted == 0
        receipt = await chain_w3.eth.get_transaction_receipt(intent["tx_hash"])
        assert receipt["status"] == 1
