"""A crash anywhere in settlement loses nothing and books nothing twice.

Method: MegaRouter runs as a real OS process with a crash point enabled (proxy/faults.py); an agent pays;
the process dies with os._exit at that point; a new process on the same database and chain starts, and
its start-up recovery must finish the intent from the chain's state. A third start must change nothing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from web3 import AsyncWeb3

from ledger import Ledger, chart, check_ledger, create_ledger_engine
from proxy.db.tables import x402_settlements
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.faults import CRASH_EXIT_CODE
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.e2e.server_process import run_server_process
from tests.fixtures.app import router_settings
from tests.fixtures.chain import token_balance_atomic

CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 16,
}


async def _pay_until_crash(base_url: str, payer: LocalAccount) -> int:
    """Pays one request; the server dies mid-way, so the client sees the connection drop."""
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
    return int(offer["accepts"][0]["amount"])


@pytest.mark.slow
@pytest.mark.parametrize("crash_point", ["after_settlement_signed", "after_settlement_mined"])
async def test_crash_during_settlement_is_recovered_once(
    crash_point: str,
    tmp_path: Path,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
    chain_w3: AsyncWeb3[Any],
) -> None:
    payer = anvil_accounts[7]
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key="0x" + anvil_accounts[0].key.hex().removeprefix("0x"),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
    )
    async with contextlib.AsyncExitStack() as cleanup:
        w3 = chain_w3
        usdc = tokens.usdc.address
        before = await token_balance_atomic(w3, usdc, payer.address)

        async with run_server_process(
            settings.model_copy(update={"fault_injection": frozenset({crash_point})}), tmp_path
        ) as server:
            paid_atomic = await _pay_until_crash(server.base_url, payer)
            assert await server.wait_exit() == CRASH_EXIT_CODE

        for _ in range(2):  # Recovery runs at start; a second start must change nothing.
            async with run_server_process(settings, tmp_path):
                pass

        assert await token_balance_atomic(w3, usdc, payer.address) == before - paid_atomic
        engine = create_ledger_engine(database_url)
        cleanup.push_async_callback(engine.dispose)
        assert await check_ledger(engine) == []
        booked = [tx for tx in await Ledger(engine).transactions() if tx.code != "inference_hold"]
        # Exactly one deposit and one gas booking for the one settlement transaction, however many starts.
        assert sorted(tx.code for tx in booked) == ["settlement_gas", "x402_deposit"], [
            (tx.idempotency_key, tx.code, tx.external_ref) for tx in booked
        ]
        credit = await Ledger(engine).balance(chart.credit_wallet(payer.address))
        # The request never reached the model, so the whole payment is the payer's credit.
        assert credit.available == paid_atomic * 1_000
        async with engine.connect() as connection:
            rows = (await connection.execute(select(x402_settlements))).mappings().all()
        assert [row["status"] for row in rows] == ["booked"]
